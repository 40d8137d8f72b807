"""One pretraining run from a plain config dict: data -> module -> Lightning fit -> checkpoints.

Used by `echojepa-train` (Hydra) and by the demo pipeline (no Hydra).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from echojepa.config import config_hash
from echojepa.confkeys import DictOf, Kwargs, keys, register, unknown_keys
from echojepa.data.datasets import DatasetError
from echojepa.io.atomic import atomic_write_text
from echojepa.masks import MASK_KEYS
from echojepa.models.checkpoint import (
    export_reference_checkpoint,
    import_reference_encoder,
    import_reference_predictor,
)
from echojepa.paths import PathsConfig
from echojepa.pretrain.build import (
    OBJECTIVE_KEYS,
    TRAINER_KEYS,
    CheckpointConfig,
    LoggerConfig,
    ModelConfig,
    build_logger,
    build_module,
    build_trainer,
)
from echojepa.pretrain.data import DataConfig, build_datamodule
from echojepa.pretrain.inputs import PretrainInputError, check_run_inputs
from echojepa.pretrain.online_probe import OnlineProbeConfig, TaskConfig, build_online_probe
from echojepa.pretrain.throughput import BF16Check, DataWait
from echojepa.synth.ensure import NotASyntheticWorldError

log = logging.getLogger(__name__)

# online_probe: parsed by OnlineProbeConfig.from_dict (each task by TaskConfig)
ONLINE_PROBE_KEYS = Kwargs(OnlineProbeConfig, nested={"tasks": DictOf(TaskConfig)})
register("online_probe", ONLINE_PROBE_KEYS, "echojepa.pretrain.online_probe.OnlineProbeConfig.from_dict")


def _group(schema: Any) -> Any:
    return field(default=None, metadata=keys(schema))


@dataclass(frozen=True)
class TrainConfig:
    """train.yaml as `pretrain` reads it: its own keys and one field per config group, each read by the
    group's registered reader (echojepa.confkeys). `pretrain` refuses any other key before it starts."""

    seed: int = 0
    run_name: str | None = None
    ckpt_path: str | None = None  # resume a Lightning checkpoint
    init_from: str | None = None  # released weights (V-JEPA 2 layout) to start from
    init_allow_partial: bool = False
    export_reference: bool = True  # <run_dir>/reference.pt at the end
    checkpoint: CheckpointConfig | None = None
    paths: PathsConfig | None = None
    model: ModelConfig | None = None
    objective: Any = _group(OBJECTIVE_KEYS)
    mask: Any = _group(MASK_KEYS)
    data: DataConfig | None = None
    trainer: Any = _group(TRAINER_KEYS)
    logger: LoggerConfig | None = None
    online_probe: Any = _group(ONLINE_PROBE_KEYS)


register("train.yaml", TrainConfig, f"{__name__}.pretrain")


def check_config_keys(cfg: dict[str, Any]) -> None:
    """Refuse a key no reader reads (a typo such as `trainer.max_step` or `+objective.foo`), one line."""
    unknown = unknown_keys(TrainConfig, cfg, "")
    if unknown:
        raise PretrainInputError(
            f"{unknown[0]}: no such config key (not read by pretraining); check the spelling"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
        )


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = str(v)[:250]  # MLflow truncates longer values anyway
    return out


class Throughput(L.Callback):
    """Clips/s over the run (after the first step, which pays for warm-up)."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.clips = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.t0 is None:
            self.t0 = time.perf_counter()
            return
        self.clips += batch["video"].shape[0] * trainer.world_size

    def clips_per_s(self) -> float:
        if self.t0 is None or self.clips == 0:
            return float("nan")
        return self.clips / (time.perf_counter() - self.t0)


def full_state_dict(module: torch.nn.Module | None) -> dict[str, torch.Tensor] | None:
    """Unsharded CPU copy of a module's weights; a collective under FSDP2, so every rank calls it."""
    if module is None:
        return None
    out = {}
    for k, v in module.state_dict().items():
        if hasattr(v, "full_tensor"):
            v = v.full_tensor()
        out[k] = v.detach().cpu().clone()
    return out


def pretrain(cfg: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Run pretraining; returns a summary (also written to run_dir/summary.json on rank 0).

    Bad user input (an option, `ckpt_path`, the dataset) raises PretrainInputError before any model is
    built or anything is written under `run_dir`.
    """
    run_dir = Path(run_dir)
    check_config_keys(cfg)
    check_run_inputs(cfg)  # options and checkpoints first: no data indexed, nothing built or written
    # quietly: the seed is a logged param already, and a refusal below must stay one line on stderr
    L.seed_everything(cfg.get("seed", 0), workers=True, verbose=False)
    try:
        datamodule = build_datamodule(cfg)
        datamodule.setup("fit")  # index now: a bad table or an empty train split refuses the run here
    except (DatasetError, NotASyntheticWorldError) as exc:
        raise PretrainInputError(str(exc)) from None
    # its datasets are refused here too, before any write
    online_probe = build_online_probe(cfg, run_dir, from_scratch=not cfg.get("init_from"))
    run_dir.mkdir(parents=True, exist_ok=True)
    module = build_module(cfg)
    if cfg.get("init_from"):
        allow = bool(cfg.get("init_allow_partial", False))
        import_reference_encoder(cfg["init_from"], module.encoder, which="encoder", allow_partial=allow)
        if hasattr(module, "target_encoder"):
            import_reference_encoder(
                cfg["init_from"], module.target_encoder, which="target_encoder", allow_partial=allow
            )
            import_reference_predictor(cfg["init_from"], module.predictor, allow_partial=allow)
    run_name = cfg.get("run_name") or cfg["objective"]["name"]
    logger = build_logger(cfg, run_dir, run_name)
    if logger:
        logger.log_hyperparams(_flatten({**cfg, "config_hash": config_hash(cfg)}))
    throughput = Throughput()
    online = [online_probe] if online_probe is not None else []
    data_wait = DataWait()  # train/data_wait_s and its share of the step
    trainer = build_trainer(
        cfg, run_dir, logger, extra_callbacks=[throughput, data_wait, BF16Check(), *online]
    )
    if logger:  # trainer.precision may say "auto": the run records what it computed in
        logger.log_hyperparams({"precision_resolved": str(trainer.precision)})
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    elapsed = time.perf_counter() - t0
    metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1
    }
    summary = {
        "objective": cfg["objective"]["name"],
        "model": cfg["model"].get("name"),
        "steps": trainer.global_step,
        "precision": str(trainer.precision),  # what trainer.precision (e.g. "auto") resolved to here
        "elapsed_s": round(elapsed, 2),
        "clips_per_s": throughput.clips_per_s(),
        "data_wait_frac": data_wait.fraction(),
        "gflops_per_step": metrics.get("train/gflops_per_step"),
        "gflops_total": module.gflops_total,
        "final_loss": metrics.get("train/loss_epoch", metrics.get("train/loss_step")),
        "config_hash": config_hash(cfg),
        "run_dir": str(run_dir),
    }
    export = cfg.get("export_reference", True)
    states = (
        [
            full_state_dict(m)
            for m in (
                module.encoder,
                getattr(module, "predictor", None),
                getattr(module, "target_encoder", module.encoder),
            )
        ]
        if export
        else []
    )
    if trainer.is_global_zero:
        if export:
            ref = run_dir / "reference.pt"
            export_reference_checkpoint(
                ref,
                *states,
                epoch=trainer.current_epoch,
                extra={"objective": cfg["objective"]["name"], "itr": trainer.global_step},
            )
            summary["reference_checkpoint"] = str(ref)
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))  # the stage marker
    return summary
