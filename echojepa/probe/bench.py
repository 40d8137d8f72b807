"""Probe benchmarks: K heads in one pass on cached-size tokens and per backbone pass, and sweeps on cached
features vs recomputed features.

Measures and prints; asserts nothing (`make bench`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from echojepa.flops import encoder_forward_flops, transformer_forward_flops
from echojepa.probe.bank import ProbeBank, grid_specs
from echojepa.probe.task import ProbeTask


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
    width: int | None = None,
) -> dict[str, float]:
    """One training step = one frozen-backbone forward + probe forward/backward/AdamW, for 1 vs K heads.

    ``width``: the probe as the protocols build it (conf/probe/ ``width``): tokens through the fixed
    projection to that width (run once per pass, shared by the heads) and, for attentive heads, the
    fixed space-time position code over the encoder's token grid. None: heads at the encoder's width."""
    encoder.eval()
    x = torch.randn(batch_size, 3, num_frames, img_size, img_size)
    target = torch.randn(batch_size)
    task = ProbeTask("regression", target_mean=0.0, target_std=1.0)
    kwargs: dict[str, Any] = {"embed_dim": width or encoder.embed_dim, "out_dim": 1}
    if width is not None:
        kwargs.update(in_dim=encoder.embed_dim)
    if kind == "attentive":
        kwargs.update(depth=depth, num_heads=attn_heads)
        if width is not None:
            kwargs.update(token_grid=list(encoder.input_grid(x)), position="sincos")

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
        "probe_width": int(kwargs["embed_dim"]),
        "tokens": int(encoder(x[:1]).shape[1]),
    }


def _lvef_probe_step(
    in_dim: int,
    token_grid: tuple[int, int, int],
    clips: int,
    width: int,
    depth: int,
    attn_heads: int,
    num_heads: int,
    batch_size: int,
) -> tuple[Callable[[torch.dtype | None], float], int]:
    """One timed training step of a probe bank on cached-size random tokens (the fixed projection to
    ``width``, the position code, AdamW), under autocast to the given dtype (None: float32); and the
    number of tokens per item."""
    gen = torch.Generator().manual_seed(0)
    n = clips * int(np.prod(token_grid))
    tokens = torch.randn(batch_size, n, in_dim, generator=gen)  # [B, S*N, D]
    target = torch.randn(batch_size, generator=gen)
    task = ProbeTask("regression", target_mean=0.0, target_std=1.0)
    kwargs: dict[str, Any] = {
        "embed_dim": width, "in_dim": in_dim, "out_dim": 1, "depth": depth, "num_heads": attn_heads,
        "token_grid": list(token_grid), "position": "sincos",
    }  # fmt: skip
    bank = ProbeBank("attentive", kwargs, grid_specs([1e-3] * num_heads, [0.01]))
    opt = torch.optim.AdamW(bank.parameters(), lr=1e-3)

    def step(dtype: torch.dtype | None) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            out = bank(tokens)
        loss = task.loss(out.float(), target).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    return step, n


def _alternating_medians(steps: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median seconds of each step, run one of each per round in turn so a change in load hits all
    alike; the first round only warms up."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds + 1):
        for name, fn in steps.items():
            t = fn()
            if r:
                times[name].append(t)
    return {name: float(np.median(t)) for name, t in times.items()}


# the demo's LVEF probe (cpu_tiny tokens: 2 clips x 8 x 4 x 4 of width 96; depth 2, width 128, 4 attention
# heads, the 2-head cpu_lr grid, batch 32)
DEMO_LVEF_PROBE = {"in_dim": 96, "token_grid": (8, 4, 4), "clips": 2, "width": 128, "depth": 2,
                   "attn_heads": 4, "num_heads": 2, "batch_size": 32}  # fmt: skip


def head_precision_step_times(rounds: int = 10, **shape: Any) -> dict[str, float]:
    """Median training step of a probe bank in float32 and under bf16 autocast (steps alternate). The
    default shape is the demo's LVEF probe (DEMO_LVEF_PROBE), what ``probe.precision: auto`` speeds up
    (echojepa/probe/fit.py)."""
    shape = {**DEMO_LVEF_PROBE, **shape}
    step, n = _lvef_probe_step(**shape)
    t = _alternating_medians({"fp32": lambda: step(None), "bf16": lambda: step(torch.bfloat16)}, rounds)
    return {"fp32_step_s": t["fp32"], "bf16_step_s": t["bf16"], "speedup": t["fp32"] / t["bf16"],
            "tokens": n, "heads": int(shape["num_heads"])}  # fmt: skip


def attention_form_step_times(rounds: int = 10, **shape: Any) -> dict[str, float]:
    """Median bf16 training step of the same probe bank with its attention as echojepa.models.attention
    chooses it (at the demo LVEF shape, 16.8M scores, the chunked form) and forced to the explicit form
    (CHUNK_FROM moved out of reach; steps alternate): the whole step, since an isolated attention's time
    depends on whether the allocator already holds the explicit form's score buffers."""
    from echojepa.models import attention

    step, n = _lvef_probe_step(**{**DEMO_LVEF_PROBE, **shape})
    default = attention.CHUNK_FROM

    def with_threshold(threshold: int) -> Callable[[], float]:
        def run() -> float:
            attention.CHUNK_FROM = threshold
            try:
                return step(torch.bfloat16)
            finally:
                attention.CHUNK_FROM = default

        return run

    t = _alternating_medians({"explicit": with_threshold(1 << 62), "chosen": with_threshold(default)}, rounds)
    return {"explicit_step_s": t["explicit"], "chosen_step_s": t["chosen"],
            "chosen_speedup": t["explicit"] / t["chosen"], "tokens": n}  # fmt: skip


def attentive_probe_train_flops(tokens: int, dim: int, depth: int, mlp_hidden: int, attn_heads: int) -> float:
    """Analytic FLOPs of one attentive head's training step per sample, as `AttentivePooler` runs it.

    (depth - 1) self-attention blocks over all frozen tokens (forward + 2x backward), then the folded
    cross-attention block (see ``echojepa.probe.pooler``): per attention head one score direction
    ``u`` [D] dotted with every token, and the pooled token [D] per head; the q / k-fold / v projections
    and the MLP act on one token. At depth 1 the tokens are frozen inputs, so the backward of the token-
    sized products needs only the weight-side gradient (1x forward, not 2x).
    """
    self_blocks = 3.0 * transformer_forward_flops(tokens, dim, depth - 1, mlp_hidden)
    token_terms = 2 * tokens * dim * attn_heads * 2  # scores z.u and pooling a.z, one per attention head
    one_token = 2 * dim * dim * 3 + 2 * 2 * dim * mlp_hidden  # q, k-fold, v on one token; MLP
    token_backward = 1.0 if depth == 1 else 2.0  # at depth > 1 the tokens carry gradients
    return self_blocks + (1.0 + token_backward) * token_terms + 3.0 * one_token


def heads_flops_ratio(
    model: str,
    tokens_per_segment: int,
    segments: int,
    depth: int,
    num_heads: int = 12,
    attn_heads: int = 16,
    width: int | None = None,
    mlp_ratio: float = 4.0,
) -> dict[str, float]:
    """FLOPs of K heads vs one head per training step, backbone forward included: the ratio no
    implementation of independent heads can beat (each head's blocks see every token).

    ``width``: heads at the common probe width (conf/probe/), fed through the fixed projection, whose
    forward (tokens x D x W, no backward: a buffer on frozen tokens) runs once per pass for all heads and
    is counted with the backbone. None: heads at the backbone's width, no projection."""
    from echojepa.models.presets import ENCODER_PRESETS

    p = ENCODER_PRESETS[model]
    dim = int(p["embed_dim"])
    patch_dim = 3 * int(p["tubelet_size"]) * int(p["patch_size"]) ** 2
    tokens = segments * tokens_per_segment
    backbone = segments * encoder_forward_flops(
        tokens_per_segment, dim, int(p["depth"]), int(dim * p["mlp_ratio"]), patch_dim
    )
    probe_dim = int(width or dim)
    shared = backbone + (2.0 * tokens * dim * probe_dim if width is not None else 0.0)
    head = attentive_probe_train_flops(tokens, probe_dim, depth, int(probe_dim * mlp_ratio), attn_heads)
    return {
        "backbone_gflop": backbone / 1e9,
        "projection_gflop": (shared - backbone) / 1e9,
        "head_gflop": head / 1e9,
        "flops_ratio": (shared + num_heads * head) / (shared + head),
    }


def sweep_cached_vs_recomputed(cfg: dict[str, Any], settings: int = 3) -> dict[str, float]:
    """Per probe setting: a run on a warm feature cache vs a run that re-extracts (empty cache).

    A first, untimed run warms everything both sides share (imports, decoding, the OS page cache,
    the cache entry itself); then `settings` runs of each kind are timed, so the ratio compares
    like with like rather than a cold first run against warm ones.
    """
    from echojepa.probe.runner import run_probe

    work = Path(tempfile.mkdtemp(prefix="echojepa-bench-"))
    try:
        base = {**cfg, "store": str(work / "store"), "mlflow": {"enabled": False}}
        warm = {**base, "cache_dir": str(work / "cache")}
        run_probe(warm, progress=False)  # untimed warm-up; fills the cache

        def timed(run_cfg: dict[str, Any]) -> float:
            t0 = time.perf_counter()
            run_probe(run_cfg, progress=False)
            return time.perf_counter() - t0

        cached = [timed({**warm, "seed": s + 1}) for s in range(settings)]
        fresh = [
            timed({**base, "cache_dir": str(work / f"fresh{s}"), "seed": s + 1}) for s in range(settings)
        ]
        per_cached, per_fresh = float(np.median(cached)), float(np.median(fresh))
        return {
            "settings_timed": settings,
            "cached_run_s (train only, median)": per_cached,
            "re_extracting_run_s (extract+train, median)": per_fresh,
            "per_setting_speedup": per_fresh / per_cached,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _time_steps(bank: ProbeBank, tokens: Tensor, target: Tensor, task: ProbeTask, steps: int) -> float:
    optimizer = torch.optim.AdamW(bank.param_groups())
    times = []
    for i in range(steps + 1):  # first step warms up kernels and allocations
        t0 = time.perf_counter()
        loss = task.loss(bank(tokens), target).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if tokens.is_cuda:
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def benchmark_heads(
    num_heads: int = 12,
    batch_size: int = 32,
    num_tokens: int = 392,
    embed_dim: int = 384,
    depth: int = 4,
    attn_heads: int = 16,
    steps: int = 3,
    kind: str = "attentive",
    device: str = "cpu",
    heads_per_pass: int | None = None,
) -> dict[str, float]:
    """Time per training step (forward + backward + AdamW) on cached-size features: one head, K heads in
    one pass (or in chunks of ``heads_per_pass``), and the estimate for K single-head runs. Prints and
    returns the figures; asserts nothing."""
    torch.manual_seed(0)
    dev = torch.device(device)
    tokens = torch.randn(batch_size, num_tokens, embed_dim, device=dev)  # [B, N, D]
    task = ProbeTask("regression", target_mean=0.0, target_std=1.0)
    target = torch.randn(batch_size, device=dev)
    kwargs: dict[str, Any] = {"embed_dim": embed_dim, "out_dim": 1}
    if kind == "attentive":
        kwargs.update(depth=depth, num_heads=attn_heads)
    specs = grid_specs([1e-3] * num_heads, [0.05])
    one = _time_steps(ProbeBank(kind, kwargs, specs[:1]).to(dev), tokens, target, task, steps)
    bank = ProbeBank(kind, kwargs, specs, heads_per_pass=heads_per_pass).to(dev)
    many = _time_steps(bank, tokens, target, task, steps)
    looped = one * num_heads
    out = {"one_head_s": one, "k_heads_one_pass_s": many, "k_single_banks_s": looped, "ratio": many / one}
    how = "one pass" if heads_per_pass is None else f"{heads_per_pass}/pass"
    print(
        f"{kind} probe depth={depth if kind == 'attentive' else '-'} B={batch_size} N={num_tokens} "
        f"D={embed_dim} on {device} ({torch.get_num_threads()} threads), median of {steps} steps:\n"
        f"  1 head              {one * 1e3:9.1f} ms/step\n"
        f"  {num_heads} heads, {how:9s}{many * 1e3:9.1f} ms/step   ({many / one:.2f}x one head)\n"
        f"  {num_heads} x 1 head (est.)  {looped * 1e3:9.1f} ms/step"
    )
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m echojepa.probe.bench``: time K probe heads in one pass vs one head."""
    import argparse

    parser = argparse.ArgumentParser(description="Time K probe heads in one pass vs one head")
    parser.add_argument("--num-heads", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-tokens", type=int, default=392)
    parser.add_argument("--embed-dim", type=int, default=384)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--attn-heads", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--kind", default="attentive")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--heads-per-pass", type=int, default=None)
    a = parser.parse_args(argv)
    benchmark_heads(
        a.num_heads, a.batch_size, a.num_tokens, a.embed_dim, a.depth, a.attn_heads, a.steps, a.kind,
        a.device, a.heads_per_pass,
    )  # fmt: skip


if __name__ == "__main__":
    main()
