"""EMA target encoder: a frozen copy of the context encoder that trails it by momentum.

The update runs on local tensors with `torch._foreach_lerp_`, so it works unchanged on plain,
DDP-replicated and FSDP2-sharded parameters (each rank updates only the shard it owns, and the
target is sharded exactly like the online encoder).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_target(encoder: nn.Module) -> nn.Module:
    """A deep copy of `encoder` with gradients off, for use as the EMA target."""
    target = copy.deepcopy(encoder)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def _local(t: torch.Tensor) -> torch.Tensor:
    # DTensor (FSDP2) -> the local shard; plain tensors pass through.
    return t.to_local() if hasattr(t, "to_local") else t


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter."""
    for module in (target, online):
        # FSDP2 keeps a root module's parameters gathered after forward (no backward follows for the
        # target): reshard so both sides hold the same local shards.
        if hasattr(module, "reshard"):
            module.reshard()
    t_params = [_local(p) for p in target.parameters()]
    o_params = [_local(p).detach() for p in online.parameters()]
    if len(t_params) != len(o_params):
        raise ValueError("target and online encoders have different parameter lists")
    torch._foreach_lerp_(t_params, o_params, 1.0 - momentum)


def momentum_at(step: int, total_steps: int, start: float, end: float) -> float:
    """Linear momentum ramp from `start` to `end` over `total_steps` (constant when start == end)."""
    if total_steps <= 0 or start == end:
        return end
    frac = min(max(step / total_steps, 0.0), 1.0)
    return start + (end - start) * frac
