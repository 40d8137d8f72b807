"""AdamW parameter groups shared by both pretraining objectives (schedules: ``echojepa.schedules``)."""

from __future__ import annotations

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
