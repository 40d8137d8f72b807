"""Pretraining throughput: clips/s, achieved FLOP/s, and masked-vs-full-token step cost.

Measures; asserts nothing. `make bench` / `python -m echojepa.cli.bench` print these figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from echojepa.flops import encoder_forward_flops


def _time(fn: Callable[[], Any], warmup: int, repeat: int, sync: Callable[[], None] = lambda: None) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]  # median


def pretrain_step_throughput(
    module: torch.nn.Module,
    batch_size: int,
    warmup: int = 2,
    repeat: int = 5,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Time full optimisation steps of a PretrainModule (EchoJEPA or EchoMAE) on random clips."""
    module = module.to(device).train()
    params = [p for m in module.trainable_modules() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randn(batch_size, 3, module.num_frames, module.img_size, module.img_size, device=device)
    is_jepa = hasattr(module, "jepa_loss")
    info: dict[str, float] = {}

    def step() -> None:
        with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
            if is_jepa:
                loss, _, groups = module.jepa_loss(x)
                info["flops"] = module.flops_per_sample(groups) * batch_size
            else:
                loss, keep, masked = module.mae_loss(x)
                info["flops"] = module.flops_per_sample(keep.shape[1], masked.shape[1]) * batch_size
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    seconds = _time(step, warmup, repeat, sync)
    return {
        "step_s": seconds,
        "clips_per_s": batch_size / seconds,
        "model_tflops_per_step": info["flops"] / 1e12,
        "achieved_tflops_per_s": info["flops"] / seconds / 1e12,
    }


def masked_vs_full(
    encoder: torch.nn.Module,
    batch_size: int,
    num_frames: int,
    img_size: int,
    keep_fraction: float = 0.2,
    warmup: int = 2,
    repeat: int = 5,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Forward+backward of the context encoder on all tokens vs on `keep_fraction` of them."""
    encoder = encoder.to(device).train()
    x = torch.randn(batch_size, 3, num_frames, img_size, img_size, device=device)
    t, h, w = (
        num_frames // encoder.tubelet_size,
        img_size // encoder.patch_size,
        img_size // encoder.patch_size,
    )
    n = t * h * w
    k = max(1, int(n * keep_fraction))
    g = torch.Generator().manual_seed(0)
    keep = torch.stack([torch.randperm(n, generator=g)[:k].sort().values for _ in range(batch_size)]).to(
        device
    )

    def run(keep_idx: torch.Tensor | None) -> Callable[[], None]:
        def fn() -> None:
            encoder.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                out = encoder(x, keep=keep_idx)
            out.float().mean().backward()

        return fn

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    full = _time(run(None), warmup, repeat, sync)
    masked = _time(run(keep), warmup, repeat, sync)
    dim = encoder.embed_dim
    depth = len(encoder.blocks)
    hidden = encoder.blocks[0].mlp.fc1.out_features
    patch_dim = 3 * encoder.tubelet_size * encoder.patch_size**2
    return {
        "tokens_full": n,
        "tokens_kept": k,
        "full_step_s": full,
        "masked_step_s": masked,
        "speedup": full / masked,
        "full_tflops_per_s": 3
        * encoder_forward_flops(n, dim, depth, hidden, patch_dim)
        * batch_size
        / full
        / 1e12,
    }
