"""The online probe callback: every N steps, how well the current encoder's features predict view and EF.

Given decoded, labelled train and val subsets (OnlineTask; echojepa.pretrain.online_probe.build makes
them), at step 0, every `every_n_steps` optimizer steps and at the end it encodes both with the encoder
being trained (the EMA target for JEPA, the encoder for MAE; `encoder` in config), pools the tokens
keeping time and motion (per-time-step means, clip mean, each position's std over time:
closed_form.time_pooled), fits a closed-form ridge probe on train (strength by leave-one-out,
echojepa.pretrain.closed_form) and scores validation: `online/view_acc`, `online/ef_mae`, with
`online/seconds` (this evaluation's wall time) and `online/cost_frac` (all time spent here, decoding
included, over the run's wall time).

At the first evaluation it also scores three references on the same subsets, logged as
`online_ref/<source>_<metric>`: a randomly initialised encoder of the same architecture (the floor a
run must rise above: for a run from scratch its own step-0 encoder, scored once for both rows; after
imported weights or a resume past step 0, a fresh init seeded by `seed`), pixel statistics pooled by
the very same function (a cells x cells thumbnail per tubelet as its token), and the trivial
predictor (majority class / train mean).

Metrics go to the trainer's loggers (MLflow or Lightning's CSV, next to train/loss and the collapse
monitor) at the step they describe, and to `<run_dir>/online_probe.csv` for the report.

The callback never changes training: it runs under no_grad in eval mode (the previous train/eval flag
of every submodule is restored), and the torch, numpy and Python RNG states are saved and restored
around it, so a run with and without it trains bit for bit the same. Under DDP/FSDP every rank encodes
its share of the clips (FSDP needs every rank in each forward) and the features are gathered.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from echojepa.data.labelled_subset import LabelledClips
from echojepa.io.atomic import atomic_write_text
from echojepa.pretrain.closed_form import fit_and_score, pixel_time_pooled, time_pooled, trivial_score
from echojepa.pretrain.online_probe.config import ENCODERS

log = logging.getLogger(__name__)

REFERENCES = ("random_init", "pixel_stats", "trivial")


@dataclass
class OnlineTask:
    """A task's decoded subsets: train fits the probe, val scores it."""

    name: str
    kind: str
    train: LabelledClips
    val: LabelledClips
    num_classes: int | None = None

    @property
    def metric(self) -> str:
        return f"{self.name}_{'acc' if self.kind == 'classification' else 'mae'}"


@contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """Everything inside leaves the torch (CPU and this CUDA device), numpy and Python RNGs as found."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """module.eval() inside; afterwards every submodule gets back its own previous train/eval flag."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, flag in flags:
            m.train(flag)


def _shard(n: int, rank: int, world: int) -> list[int]:
    """Rank `rank`'s contiguous share of range(n), padded (last index repeated) to ceil(n / world), so
    every rank runs the same number of forward passes (FSDP's collectives need that)."""
    per = math.ceil(n / world)
    return [min(i, n - 1) for i in range(rank * per, (rank + 1) * per)]


class OnlineProbe(L.Callback):
    """Closed-form probes of the current encoder during pretraining (module docstring)."""

    def __init__(
        self,
        tasks: Sequence[OnlineTask] | Callable[[], Sequence[OnlineTask]],
        every_n_steps: int,
        alphas: Sequence[float],
        encoder: str = "auto",
        batch_size: int = 16,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        references: bool = True,
        pixel_cells: int = 8,
        motion_cells: int = 4,
        seed: int = 0,
        csv_path: str | Path | None = None,
        setup_seconds: float = 0.0,
        from_scratch: bool = False,
    ) -> None:
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        self._tasks_or_loader = tasks
        self.tasks: list[OnlineTask] = [] if callable(tasks) else list(tasks)
        self.every_n_steps = int(every_n_steps)
        self.alphas = [float(a) for a in alphas]
        self.encoder = encoder
        self.batch_size = int(batch_size)
        self.mean, self.std = tuple(mean), tuple(std)
        self.references = references
        self.pixel_cells = int(pixel_cells)
        self.motion_cells = int(motion_cells)
        self.seed = int(seed)
        # a run from its own random init: at step 0 the probed encoder IS a random-init encoder of the
        # architecture, so the random_init reference is that very score (no second encoding pass)
        self.from_scratch = bool(from_scratch)
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.history: list[dict[str, Any]] = []  # one row per (step, source), as in the CSV
        self.online_seconds = float(setup_seconds)  # everything spent here, index reading included
        self._setup_seconds = float(setup_seconds)  # spent before fit: counted in the run's wall time too
        self._elapsed_before = 0.0  # wall time of the run before a resume
        self._t0: float | None = None
        self._last_step: int | None = None

    # ----- Lightning hooks ------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        if callable(self._tasks_or_loader) and not self.tasks:
            with preserved_rng(pl_module.device):
                self.tasks = list(self._tasks_or_loader())
            self.online_seconds += time.perf_counter() - self._t0
            log.info("online probe: %d task(s) loaded in %.1f s", len(self.tasks), self.online_seconds)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._evaluate(trainer, pl_module)  # the curve ends at the final weights

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "online_seconds": self.online_seconds,
            "elapsed_seconds": self._elapsed(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.online_seconds += float(state_dict.get("online_seconds", 0.0))
        self._elapsed_before = float(state_dict.get("elapsed_seconds", 0.0))

    # ----- evaluation -----------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return (
            self._setup_seconds
            + self._elapsed_before
            + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)
        )

    def probed_encoder(self, pl_module: L.LightningModule) -> tuple[str, nn.Module]:
        choice = self.encoder
        if choice == "auto":
            choice = "target" if hasattr(pl_module, "target_encoder") else "context"
        if choice == "target":
            if not hasattr(pl_module, "target_encoder"):
                raise ValueError(f"{type(pl_module).__name__} has no target encoder; use encoder=context")
            return "target", pl_module.target_encoder
        return "context", pl_module.encoder

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = int(trainer.global_step)
        if step == self._last_step or not self.tasks:
            return
        self._last_step = step
        t0 = time.perf_counter()
        name, encoder = self.probed_encoder(pl_module)
        rows: list[dict[str, Any]] = []
        with preserved_rng(pl_module.device), torch.no_grad():
            with eval_mode(encoder):
                row = self._scores(trainer, pl_module, self._encode_fn(encoder))
            if hasattr(encoder, "reshard"):  # FSDP2 keeps a root module gathered after a forward
                encoder.reshard()
            rows.append({"step": step, "source": name, **row})
            if self.references and not any(r["source"] in REFERENCES for r in self.history):
                refs = self._reference_scores(trainer, pl_module, row, step)
                rows.extend({"step": step, "source": s, **r} for s, r in refs)
        seconds = time.perf_counter() - t0
        self.online_seconds += seconds
        rows[0].update(seconds=seconds, cost_frac=self.online_seconds / max(self._elapsed(), 1e-9))
        self.history.extend(rows)
        self._publish(trainer, rows)

    def _encode_fn(self, encoder: nn.Module) -> Callable[[Tensor], Tensor]:
        def encode(video: Tensor) -> Tensor:
            tokens = encoder(video)  # [B, N, D]
            return time_pooled(tokens, encoder.input_grid(video), self.motion_cells)

        return encode

    def _normalise(self, video: Tensor, device: torch.device) -> Tensor:
        x = video.to(device, non_blocking=True).float().div_(255.0)  # [B, C, T, H, W] in 0-1
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1, 1)
        return (x - mean) / std

    def _features(
        self, trainer: L.Trainer, device: torch.device, fn: Callable[[Tensor], Tensor], video: Tensor
    ) -> Tensor:
        """fn over all clips, each rank its share, gathered in order: [N, F] float32 on the CPU."""
        world, rank = int(trainer.world_size), int(trainer.global_rank)
        mine = _shard(video.shape[0], rank, world)
        context = getattr(trainer, "precision_plugin", None)
        context = context.forward_context() if context is not None else nullcontext()  # bf16 autocast
        out = []
        with context:
            for start in range(0, len(mine), self.batch_size):
                batch = video[mine[start : start + self.batch_size]]
                out.append(fn(self._normalise(batch, device)).float())
        feats = torch.cat(out)  # [per, F]
        if world > 1:
            feats = trainer.strategy.all_gather(feats).reshape(-1, feats.shape[-1])  # [world * per, F]
        return feats[: video.shape[0]].cpu()

    def _scores(
        self, trainer: L.Trainer, pl_module: L.LightningModule, fn: Callable[[Tensor], Tensor]
    ) -> dict[str, float]:
        row = {}
        for task in self.tasks:
            x_train = self._features(trainer, pl_module.device, fn, task.train.video)
            x_val = self._features(trainer, pl_module.device, fn, task.val.video)
            score = fit_and_score(
                task.kind, x_train, task.train.target, x_val, task.val.target, self.alphas, task.num_classes
            )
            row[task.metric] = score.value
        return row

    def _reference_scores(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        probed_row: dict,
        step: int,
    ) -> list[tuple[str, dict[str, float]]]:
        out = []
        if self.from_scratch and step == 0:
            out.append(("random_init", dict(probed_row)))
        elif (reference := self._random_encoder(pl_module)) is not None:
            reference = reference.to(pl_module.device).eval()
            out.append(("random_init", self._scores(trainer, pl_module, self._encode_fn(reference))))
            del reference
        tubelet = int(getattr(pl_module, "encoder_cfg", {}).get("tubelet_size", 2))
        pixel = {}
        for task in self.tasks:
            pool = lambda v: pixel_time_pooled(v, tubelet, self.pixel_cells)  # noqa: E731
            score = fit_and_score(
                task.kind, pool(task.train.video), task.train.target, pool(task.val.video),
                task.val.target, self.alphas, task.num_classes,
            )  # fmt: skip
            pixel[task.metric] = score.value
        out.append(("pixel_stats", pixel))
        out.append(
            ("trivial", {t.metric: trivial_score(t.kind, t.train.target, t.val.target) for t in self.tasks})
        )
        return out

    def _random_encoder(self, pl_module: L.LightningModule) -> nn.Module | None:
        """A freshly initialised encoder of the module's architecture (seeded; RNG restored by caller)."""
        cfg = getattr(pl_module, "encoder_cfg", None)
        if cfg is None:
            return None
        from echojepa.models.vit import VisionTransformer

        torch.default_generator.manual_seed(self.seed)  # built on the CPU: only the CPU stream is used
        return VisionTransformer(img_size=pl_module.img_size, num_frames=pl_module.num_frames, **cfg)

    # ----- output ---------------------------------------------------------------------------------
    def _publish(self, trainer: L.Trainer, rows: list[dict[str, Any]]) -> None:
        if not trainer.is_global_zero:
            return
        first, refs = rows[0], rows[1:]
        metrics = {f"online/{k}": float(v) for k, v in first.items() if k not in ("step", "source")}
        for row in refs:
            metrics.update(
                {
                    f"online_ref/{row['source']}_{k}": float(v)
                    for k, v in row.items()
                    if k not in ("step", "source")
                }
            )
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=first["step"])
        summary = ", ".join(f"{k.split('/', 1)[1]}={v:.3g}" for k, v in metrics.items())
        log.info("online probe at step %d: %s", first["step"], summary)
        if self.csv_path is not None:
            atomic_write_text(self.csv_path, history_csv(self.history))


def history_csv(history: Sequence[Mapping[str, Any]]) -> str:
    """The history as CSV: step, source, then every metric column that any row has (blank if absent)."""
    columns = ["step", "source"]
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()
