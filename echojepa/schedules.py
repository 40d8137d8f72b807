"""Learning-rate schedules shared by pretraining and probes (below both: neither imports the other)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class ScheduleConfig:
    """`warmup_constant`: linear warmup from start_lr to lr, then constant (the main phase).
    `cooldown`: linear decay from lr to final_lr over total_steps (its own phase, started from a
    main-phase checkpoint). `warmup_cosine`: warmup then cosine to final_lr (used by probes)."""

    kind: str = "warmup_constant"
    lr: float = 1e-3
    start_lr: float = 0.0
    final_lr: float = 1e-6
    warmup_steps: int = 0
    total_steps: int = 0


def lr_at(step: int, cfg: ScheduleConfig) -> float:
    if cfg.kind not in ("warmup_constant", "cooldown", "warmup_cosine"):
        raise ValueError(
            f"unknown schedule kind {cfg.kind!r}; valid: warmup_constant, cooldown, warmup_cosine"
        )
    if cfg.kind != "cooldown" and step < cfg.warmup_steps:
        return cfg.start_lr + (cfg.lr - cfg.start_lr) * (step + 1) / cfg.warmup_steps
    if cfg.kind == "warmup_constant":
        return cfg.lr
    if cfg.total_steps <= 0:
        raise ValueError(f"schedule {cfg.kind!r} needs total_steps > 0")
    if cfg.kind == "cooldown":
        frac = min(step / cfg.total_steps, 1.0)
        return cfg.lr + (cfg.final_lr - cfg.lr) * frac

    span = max(cfg.total_steps - cfg.warmup_steps, 1)
    frac = min((step - cfg.warmup_steps) / span, 1.0)
    return cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (1 + math.cos(math.pi * frac))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR whose factor reproduces `lr_at` (base lr of every group = cfg.lr)."""
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr
        group["initial_lr"] = cfg.lr
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, cfg) / cfg.lr)
