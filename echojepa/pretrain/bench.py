"""Pretraining throughput: clips/s, achieved FLOP/s, masked-vs-full-token step cost, float32 vs bf16
autocast steps, and the pretraining loader's clips/s with and without the decoded-video cache.

Measures; asserts nothing. `make bench` / `python -m echojepa.cli.bench` print these figures.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
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


def precision_step_times(
    module: torch.nn.Module,
    batch_size: int,
    dtypes: Sequence[torch.dtype | None] = (None, torch.bfloat16),
    warmup: int = 1,
    rounds: int = 3,
    device: str = "cpu",
) -> dict[str, float]:
    """Median step time per autocast dtype (None: float32), one step of each dtype per round in turn,
    so a change in machine load hits every dtype alike. Also the first step's loss per dtype on the
    same batch and masks: their relative difference shows what the precision does to the numbers."""
    module = module.to(device).train()
    params = [p for m in module.trainable_modules() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, module.num_frames, module.img_size, module.img_size, generator=gen).to(
        device
    )
    is_jepa = hasattr(module, "jepa_loss")
    device_type = device.split(":")[0]
    sync = torch.cuda.synchronize if device_type == "cuda" else (lambda: None)

    def loss_of(dtype: torch.dtype | None, fixed: bool) -> torch.Tensor:
        state = module.mask_generator.state_dict()
        if fixed:  # the same masks for every dtype
            module.mask_generator.load_state_dict({"seed": 1234, "step": 0})
        with torch.autocast(device_type=device_type, dtype=dtype, enabled=dtype is not None):
            loss = (module.jepa_loss(x) if is_jepa else module.mae_loss(x))[0]
        if fixed:
            module.mask_generator.load_state_dict(state)
        return loss

    first = {}
    with torch.no_grad():
        for dtype in dtypes:
            first[dtype] = float(loss_of(dtype, fixed=True))

    def step(dtype: torch.dtype | None) -> float:
        t0 = time.perf_counter()
        loss = loss_of(dtype, fixed=False)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        return time.perf_counter() - t0

    for dtype in dtypes:
        for _ in range(warmup):
            step(dtype)
    times: dict[torch.dtype | None, list[float]] = {d: [] for d in dtypes}
    for _ in range(rounds):
        for dtype in dtypes:
            times[dtype].append(step(dtype))
    out: dict[str, float] = {}
    ref = dtypes[0]
    for dtype in dtypes:
        name = "fp32" if dtype is None else str(dtype).removeprefix("torch.")
        median = sorted(times[dtype])[len(times[dtype]) // 2]
        out[f"{name}_step_s"] = median
        out[f"{name}_clips_per_s"] = batch_size / median
        if dtype is not ref:
            out[f"{name}_speedup_vs_fp32"] = sorted(times[ref])[len(times[ref]) // 2] / median
            out[f"{name}_loss_rel_diff"] = abs(first[dtype] - first[ref]) / abs(first[ref])
    return out


def loader_throughput(
    paths: Sequence[str | Path],
    img_size: int,
    frames: int = 16,
    frame_step: int = 2,
    short_side_scale: float = 1.5,
    clips: int = 32,
    seed: int = 0,
) -> dict[str, float]:
    """Clips/s of the pretraining dataset (train crop, one process with one thread, like one loader
    worker) over `paths`: `clips` clips decoded from the files (cycling over the videos, a new epoch's
    clip each round), the cache entries built (one pass, every frame decoded), then `clips` clips read
    from the entries. Also CPU seconds per clip (per video for the build), steadier on a busy machine."""
    import math

    from echojepa.data.clipcache import ClipCache
    from echojepa.data.clips import ClipSpec
    from echojepa.data.datamodules import IMAGENET_MEAN, IMAGENET_STD
    from echojepa.data.index import Record
    from echojepa.data.torchdata import VideoClipDataset
    from echojepa.data.transforms import build_transform

    records = [
        Record(path=Path(p), split="train", patient=str(i), study=str(i), view="", labels={})
        for i, p in enumerate(paths)
    ]
    n = len(records)
    spec = ClipSpec(frames=frames, frame_step=frame_step)
    transform = build_transform(True, img_size, IMAGENET_MEAN, IMAGENET_STD)

    def timed(ds: VideoClipDataset, keys: list[tuple[int, int]]) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for key in keys:
            ds[key]
        return time.perf_counter() - wall, time.process_time() - cpu

    rounds = [(i % n, i // n) for i in range(clips)]  # (video, epoch)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a loader worker (echojepa.data.torchdata.worker_init)
    try:
        with tempfile.TemporaryDirectory(prefix="echojepa-bench-cache-") as tmp:
            cache = ClipCache(tmp, math.ceil(img_size * short_side_scale))
            plain = VideoClipDataset(records, spec, transform, seed=seed)
            cached = VideoClipDataset(records, spec, transform, seed=seed, frame_cache=cache)
            out: dict[str, float] = {"videos": n, "clips": clips}
            wall, cpu = timed(plain, rounds)
            out.update(decode_clips_per_s=clips / wall, decode_cpu_s_per_clip=cpu / clips)
            wall, cpu = timed(cached, [(i, 0) for i in range(n)])  # builds every entry
            out.update(cache_build_s_per_video=wall / n, cache_build_cpu_s_per_video=cpu / n)
            wall, cpu = timed(cached, rounds)
            out.update(cached_clips_per_s=clips / wall, cached_cpu_s_per_clip=cpu / clips)
            out["cache_mb_per_video"] = sum(f.stat().st_size for f in Path(tmp).rglob("*.npy")) / n / 1e6
    finally:
        torch.set_num_threads(threads)
    return out


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


def attention_times(
    batch: int = 8, heads: int = 3, tokens: int = 392, head_dim: int = 64, repeat: int = 10
) -> dict[str, float]:
    """Forward + backward of one attention at ViT-tiny 16 x 112 shapes (default), in ms: SDPA's fused
    kernel in float32 and in bf16, and the two bf16 forms echojepa.models.attention chooses between on
    the CPU (explicit, and chunked with the softmax recomputed), with the one it chooses at this size."""
    import torch.nn.functional as F

    from echojepa.models.attention import CHUNK_FROM, chunked_attention, explicit_attention

    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(batch, heads, tokens, head_dim, generator=gen) for _ in range(3)]

    def timed(fn: Callable[..., torch.Tensor], dtype: torch.dtype) -> float:
        q, k, v = (t.to(dtype).requires_grad_() for t in base)
        return 1000 * _time(lambda: fn(q, k, v).sum().backward(), warmup=2, repeat=repeat)

    return {
        "sdpa_fp32_ms": timed(F.scaled_dot_product_attention, torch.float32),
        "sdpa_bf16_ms": timed(F.scaled_dot_product_attention, torch.bfloat16),
        "explicit_bf16_ms": timed(explicit_attention, torch.bfloat16),
        "chunked_bf16_ms": timed(chunked_attention, torch.bfloat16),
        "scores_millions": batch * heads * tokens * tokens / 1e6,
        "chosen": "chunked" if batch * heads * tokens * tokens >= CHUNK_FROM else "explicit",
    }
