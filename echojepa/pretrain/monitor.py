"""Collapse monitor: a JEPA can lower its loss by making every feature alike; these numbers show it."""

from __future__ import annotations

import torch


@torch.no_grad()
def feature_spread(features: torch.Tensor) -> float:
    """Mean over channels of the std across samples of clip-pooled features. features: [B, N, D]."""
    pooled = features.float().mean(dim=1)  # [B, D]
    if pooled.shape[0] < 2:
        return float("nan")
    return pooled.std(dim=0).mean().item()


@torch.no_grad()
def effective_rank(features: torch.Tensor, max_rows: int = 4096) -> float:
    """exp(entropy) of the normalised singular values of centred token features (Roy & Vetterli).

    1 means every token maps to one direction (collapse); D means all channels are used evenly.
    """
    x = features.float().reshape(-1, features.shape[-1])  # [B*N, D]
    if x.shape[0] > max_rows:
        step = x.shape[0] // max_rows
        x = x[::step][:max_rows]
    x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(x)
    p = s / s.sum().clamp_min(1e-12)
    p = p[p > 0]
    return torch.exp(-(p * p.log()).sum()).item()
