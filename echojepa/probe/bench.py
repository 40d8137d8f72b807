"""Probe benchmarks: K heads per backbone pass, and sweeps on cached features vs recomputed features.

Measures and prints; asserts nothing (`make bench`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from echojepa.pretrain.flops import encoder_forward_flops, transformer_forward_flops
from echojepa.probe.heads import ProbeBank, ProbeTask, grid_specs


def heads_per_backbone_pass(
    encoder: torch.nn.Module,
    num_frames: int,
    img_size: int,
    batch_size: int = 8,
    num_heads: int = 12,
    depth: int = 1,
    attn_heads: int = 4,
    steps: int = 3,
    kind: str = "attentive",
) -> dict[str, float]:
    """One training step = one frozen-backbone forward + probe forward/backward/AdamW, for 1 vs K heads."""
    encoder.eval()
    x = torch.randn(batch_size, 3, num_frames, img_size, img_size)
    target = torch.randn(batch_size)
    task = ProbeTask("regression", target_mean=0.0, target_std=1.0)
    kwargs: dict[str, Any] = {"embed_dim": encoder.embed_dim, "out_dim": 1}
    if kind == "attentive":
        kwargs.update(depth=depth, num_heads=attn_heads)

    def timed(k: int) -> float:
        bank = ProbeBank(kind, kwargs, grid_specs([1e-3] * k, [0.05]))
        opt = torch.optim.AdamW(bank.parameters(), lr=1e-3)
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            with torch.no_grad():
                tokens = encoder(x)  # [B, N, D]: once per batch, whatever K is
            loss = task.loss(bank(tokens), target).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        return sorted(times[1:])[len(times[1:]) // 2]

    one, many = timed(1), timed(num_heads)
    return {
        "one_head_step_s": one,
        f"{num_heads}_heads_step_s": many,
        "ratio": many / one,
        "probe": kind if kind != "attentive" else f"attentive depth {depth}",
        "tokens": int(encoder(x[:1]).shape[1]),
    }


def attentive_probe_train_flops(tokens: int, dim: int, depth: int, mlp_hidden: int) -> float:
    """Analytic FLOPs of one attentive head's training step per sample (forward + 2x backward).

    (depth - 1) self-attention blocks over all frozen tokens, then the cross-attention block: k/v
    projections over the tokens, the single query's attention, q projection and MLP on one token.
    """
    self_blocks = transformer_forward_flops(tokens, dim, depth - 1, mlp_hidden)
    cross = 2 * tokens * dim * 2 * dim + 2 * 2 * tokens * dim + 2 * dim * dim + 2 * 2 * dim * mlp_hidden
    return 3.0 * (self_blocks + cross)


def heads_flops_ratio(
    model: str, tokens_per_segment: int, segments: int, depth: int, num_heads: int = 12
) -> dict[str, float]:
    """FLOPs of K heads vs one head per training step, backbone forward included: the ratio no
    implementation of independent heads can beat (each head's blocks see every token)."""
    from echojepa.models.presets import ENCODER_PRESETS

    p = ENCODER_PRESETS[model]
    dim, hidden = int(p["embed_dim"]), int(p["embed_dim"] * p["mlp_ratio"])
    patch_dim = 3 * int(p["tubelet_size"]) * int(p["patch_size"]) ** 2
    backbone = segments * encoder_forward_flops(tokens_per_segment, dim, int(p["depth"]), hidden, patch_dim)
    head = attentive_probe_train_flops(segments * tokens_per_segment, dim, depth, hidden)
    return {
        "backbone_gflop": backbone / 1e9,
        "head_gflop": head / 1e9,
        "flops_ratio": (backbone + num_heads * head) / (backbone + head),
    }


def sweep_cached_vs_recomputed(cfg: dict[str, Any], settings: int = 4) -> dict[str, float]:
    """A sweep of `settings` probe runs: with the feature cache (extract once) vs extracting every time."""
    from echojepa.probe.runner import run_probe

    work = Path(tempfile.mkdtemp(prefix="echojepa-bench-"))
    try:
        cfg = {
            **cfg,
            "store": str(work / "store"),
            "cache_dir": str(work / "cache"),
            "mlflow": {"enabled": False},
        }
        t0 = time.perf_counter()
        run_probe(cfg, progress=False)  # miss: extract + train
        first = time.perf_counter() - t0
        cached = []
        for s in range(settings):
            t0 = time.perf_counter()
            run_probe({**cfg, "seed": s + 1}, progress=False)  # hit: train only
            cached.append(time.perf_counter() - t0)
        per_cached = sum(cached) / len(cached)
        return {
            "first_run_s (extract+train)": first,
            "cached_run_s (train)": per_cached,
            "recompute_sweep_s": first * settings,
            "cached_sweep_s": first + per_cached * (settings - 1),
            "per_setting_speedup": first / per_cached,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
