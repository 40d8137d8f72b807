"""Which precision a run computes in: "32-true", "bf16-mixed", or "auto" (bf16-mixed where bf16 pays).

Pretraining hands the resolved value to Lightning's Trainer; the probes autocast their heads with it,
and feature passes the frozen backbone with evaluate.yaml's own `feature_precision` (part of the feature
cache key when not float32, so a cache never depends on the heads' precision).
"auto" picks bf16-mixed on CUDA and on CPUs with native bf16 matmuls, float32 elsewhere: on a CPU
without them bf16 runs a scalar fallback (measured 0.37-0.67x the float32 step on an AVX2 AMD EPYC,
README "Performance"), while on an AVX512-BF16 AMD EPYC the ViT-tiny 16 x 112 JEPA step ran 2.26x and a
demo LVEF probe 2.0x faster than float32 (2026-12-03, README). A run records the value it resolved to.
"""

from __future__ import annotations

import torch

PRECISIONS = ("32-true", "bf16-mixed", "auto")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX): the test PyTorch itself uses to
    route bf16 GEMMs to oneDNN. Without it they take a scalar fallback, ~10x slower than float32."""
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(torch.backends.mkldnn.is_available() and supported is not None and supported())


def resolve_precision(precision: str, device_type: str) -> str:
    """`precision` with "auto" replaced by what pays on `device_type` ("cpu", "cuda")."""
    precision = str(precision)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if device_type == "cuda" or (device_type == "cpu" and cpu_has_native_bf16()):
        return "bf16-mixed"
    return "32-true"


def autocast_dtype_of(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None: float32, no autocast)."""
    return torch.bfloat16 if precision == "bf16-mixed" else None
