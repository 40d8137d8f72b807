"""Training a probe bank (all K heads together) and predicting with it.

Regression targets are z-scored with the TRAIN split's mean/std (SmoothL1 on z; predictions and MAE in
real units); classification uses cross-entropy (``echojepa.probe.task``). The head reported is chosen on
the validation split only (final-epoch metric); the test split never reaches this module's trainer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from echojepa.precision import autocast_dtype_of, resolve_precision
from echojepa.probe.bank import HeadSpec, ProbeBank
from echojepa.probe.task import ProbeTask
from echojepa.schedules import ScheduleConfig, lr_at


@dataclass
class ProbeSchedule:
    """Per-head lr: linear warmup from ``start_lr_factor * lr`` then cosine to ``final_lr_factor * lr``."""

    warmup_epochs: float = 0.0
    start_lr_factor: float = 0.0
    final_lr_factor: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


def probe_schedule(cfg: Mapping[str, Any]) -> ProbeSchedule:
    """The ``schedule`` block of a conf/probe/*.yaml mapping."""
    sched = dict(cfg.get("schedule") or {})
    if "betas" in sched:
        sched["betas"] = tuple(float(b) for b in sched["betas"])
    return ProbeSchedule(**sched)


@dataclass
class TrainResult:
    best_head: int
    val_metric_name: str
    val_metrics: list[float]  # final-epoch validation metric per head
    higher_is_better: bool
    specs: list[HeadSpec]
    history: list[dict[str, Any]] = field(default_factory=list)  # per epoch: train_loss [K], val [K] | None
    bank_state: dict[str, Tensor] = field(default_factory=dict)
    task: ProbeTask | None = None
    steps: int = 0  # optimizer steps taken (every head takes each one)
    probe: dict[str, Any] = field(default_factory=dict)  # ProbeBank.describe() of the trained bank

    @property
    def chosen(self) -> dict[str, Any]:
        """The results record's ``chosen`` entry: selected on validation."""
        spec = self.specs[self.best_head]
        return {
            "head": self.best_head, "lr": spec.lr, "wd": spec.wd,
            "val_metric": self.val_metrics[self.best_head], "val_name": self.val_metric_name,
            "epochs": len(self.history), "steps": self.steps, "probe": dict(self.probe),
        }  # fmt: skip


LoaderLike = Iterable[Mapping[str, Any]] | Callable[[int], Iterable[Mapping[str, Any]]]


def _epoch_loader(loader: LoaderLike, epoch: int) -> Iterable[Mapping[str, Any]]:
    """A loader, or a callable epoch -> loader (e.g. to draw one cached augmented view per epoch)."""
    return loader(epoch) if callable(loader) else loader


def _batch_inputs(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    tokens = batch["tokens"].to(device, non_blocking=True).float()  # caches hold float16
    mask = batch.get("mask")
    presence = batch.get("presence")
    return {
        "tokens": tokens,
        "key_padding_mask": None if mask is None else mask.to(device).bool(),
        "presence": None if presence is None else presence.to(device).bool(),
    }


def select_best_head(val_metrics: Sequence[float], higher_is_better: bool) -> int:
    """Index of the best finite validation metric (diverged heads are never chosen)."""
    vals = np.asarray(val_metrics, dtype=np.float64)
    if not np.isfinite(vals).any():
        raise ValueError("every head has a non-finite validation metric: all heads diverged")
    vals = np.where(np.isfinite(vals), vals, -np.inf if higher_is_better else np.inf)
    return int(np.argmax(vals) if higher_is_better else np.argmin(vals))


def _collect_targets(loader: LoaderLike) -> np.ndarray:
    return np.concatenate(
        [np.asarray(b["target"], dtype=np.float64).reshape(-1) for b in _epoch_loader(loader, 0)]
    )


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        disable=not enabled,
    )  # fmt: skip


def train_probe_bank(
    bank: ProbeBank,
    train_loader: LoaderLike,
    val_loader: Iterable[Mapping[str, Any]],
    task: ProbeTask,
    epochs: int,
    device: str | torch.device = "cpu",
    progress: bool = False,
    *,
    schedule: ProbeSchedule | None = None,
    seed: int = 0,
    min_steps: int = 0,
    val_passes: int | None = None,
    precision: str = "32-true",
) -> TrainResult:
    """Train all heads of ``bank`` together (one AdamW, one group pair per head, summed loss).

    Loaders yield ``{"tokens": [B, N, D] | [B, S, N, D], "mask": [B, N] bool | None, "presence": [B, S] bool
    (multi-view), "target": [B]}``. ``train_loader`` may be a callable ``epoch -> loader``. A regression
    task without z-scoring stats gets them from the train loader's targets. The best head is chosen on
    ``val_loader`` only.

    ``min_steps`` lengthens training on small sets: epochs become ``max(epochs, ceil(min_steps /
    steps_per_epoch))``, so 20 epochs of 3 batches do not leave the heads undertrained. ``val_passes``
    bounds how many epochs end with a validation pass (None: every epoch; the last epoch always has one,
    and it is the one the head is chosen on), which dominates the cost of many short epochs.

    ``precision`` ("32-true", "bf16-mixed", "auto": echojepa.precision): the training forward runs under
    autocast to that dtype (parameters, optimizer state, gradients and the loss stay float32); the
    validation passes that choose the head, and every prediction, run in float32.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if task.out_dim != bank.out_dim:
        raise ValueError(f"task needs out_dim {task.out_dim}, bank heads give {bank.out_dim}")
    schedule = schedule or ProbeSchedule()
    if not task.normalised:
        task = task.with_train_targets(_collect_targets(train_loader))
    device = torch.device(device)
    precision = resolve_precision(precision, device.type)
    dtype = autocast_dtype_of(precision)
    bank.to(device)
    bank.task = task
    optimizer = torch.optim.AdamW(bank.param_groups(), betas=schedule.betas, eps=schedule.eps)
    steps_per_epoch = len(_epoch_loader(train_loader, 0))  # type: ignore[arg-type]
    if min_steps > 0 and steps_per_epoch > 0:
        epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))
    val_every = max(1, math.ceil(epochs / val_passes)) if val_passes else 1
    total = epochs * steps_per_epoch
    warmup = int(round(schedule.warmup_epochs * steps_per_epoch))
    group_sched = [
        ScheduleConfig(
            kind="warmup_cosine",
            lr=g["lr"],
            start_lr=g["lr"] * schedule.start_lr_factor,
            final_lr=g["lr"] * schedule.final_lr_factor,
            warmup_steps=warmup,
            total_steps=total,
        )  # fmt: skip
        for g in optimizer.param_groups
    ]
    generator = torch.Generator().manual_seed(seed)  # view dropout draws
    history: list[dict[str, Any]] = []
    step = 0
    val_metrics: list[float] = []
    with _progress(progress) as bar:
        job = bar.add_task(f"probes x{len(bank)}", total=total)
        for epoch in range(epochs):
            bank.train()
            loss_sum = torch.zeros(len(bank), device=device)
            for batch in _epoch_loader(train_loader, epoch):
                for group, cfg in zip(optimizer.param_groups, group_sched):
                    group["lr"] = lr_at(step, cfg)
                inputs = _batch_inputs(batch, device)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    out = bank(**inputs, generator=generator)
                per_head = task.loss(out.float(), batch["target"].to(device))  # [K]
                optimizer.zero_grad(set_to_none=True)
                per_head.sum().backward()  # heads share no parameter: the sum keeps their gradients apart
                optimizer.step()
                bank.trained_steps += 1
                loss_sum += per_head.detach()
                step += 1
                bar.advance(job)
            val: list[float] | None = None
            if (epoch + 1) % val_every == 0 or epoch == epochs - 1:  # selection reads the last epoch's
                val_pred, val_target = _predict_all(bank, val_loader, task, device)
                val = val_metrics = [task.score(val_pred[k], val_target) for k in range(len(bank))]
            history.append(
                {"epoch": epoch, "train_loss": (loss_sum / max(steps_per_epoch, 1)).tolist(), "val": val}
            )
    best = select_best_head(val_metrics, task.higher_is_better)
    return TrainResult(
        best_head=best, val_metric_name=str(task.val_metric), val_metrics=val_metrics,
        higher_is_better=task.higher_is_better, specs=list(bank.specs), history=history,
        bank_state={k: v.detach().cpu().clone() for k, v in bank.state_dict().items()}, task=task,
        steps=step, probe={**bank.describe(), "precision": precision},
    )  # fmt: skip


@torch.no_grad()
def _predict_all(
    bank: ProbeBank, loader: Iterable[Mapping[str, Any]], task: ProbeTask, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    was_training = bank.training
    bank.eval()
    preds, targets = [], []
    for batch in loader:
        preds.append(task.predictions(bank(**_batch_inputs(batch, device))).cpu().numpy())
        if "target" in batch and batch["target"] is not None:
            targets.append(np.asarray(batch["target"]).reshape(-1))
    bank.train(was_training)
    if not preds:
        raise ValueError("loader yielded no batches")
    target = np.concatenate(targets) if targets else np.empty(0)
    return np.concatenate(preds, axis=1), target  # [K, n(, C)], [n]


def predict_bank(
    bank: ProbeBank,
    loader: Iterable[Mapping[str, Any]],
    head: int | None = None,
    task: ProbeTask | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Predictions in real units [n] (regression) or class probabilities [n, C]; all heads stacked first
    ([K, n(, C)]) when ``head`` is None. Refuses a bank that was never trained."""
    task = task or bank.task
    if task is None:
        raise ValueError("predict_bank needs the ProbeTask (pass task= or use a bank from train/load_probe)")
    if int(bank.trained_steps) == 0:
        raise ValueError("refusing to predict with an untrained probe bank (trained_steps == 0)")
    if head is not None and not 0 <= head < len(bank):
        raise ValueError(f"head {head} out of range for a bank of {len(bank)}")
    device = torch.device(device) if device is not None else next(bank.parameters()).device
    pred, _ = _predict_all(bank, loader, task, device)
    return pred if head is None else pred[head]
