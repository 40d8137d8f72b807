"""Optimiser and learning-rate schedules shared by both pretraining objectives."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def param_groups(modules: list[nn.Module], weight_decay: float, official_rule: bool = False) -> list[dict]:
    """AdamW groups: decay on weight matrices/kernels, none on biases and 1-D parameters (norms, tokens).

    `official_rule` applies V-JEPA 2's own rule instead: decay every parameter with ndim != 1 whose name
    has no "bias", which decays the [1, 1, P] mask tokens too (needed to replay the official trajectory).
    """
    decay, no_decay = [], []
    for module in modules:
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            if official_rule:
                exempt = p.ndim == 1 or "bias" in name
            else:
                exempt = p.ndim <= 1 or name.endswith(".bias") or "mask_token" in name
            (no_decay if exempt else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


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
    import math

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
