"""softmax(q kᵀ / √d) v, with the kernel chosen for the dtype and device.

PyTorch's fused CPU kernel (SDPA's flash attention) gains nothing from bf16: on a 2-core AVX512-BF16 CPU
a forward + backward at ViT-tiny 16 x 112 shapes (8 x 3 heads x 392 tokens x 64) took 25.8 ms in bf16 and
25.7 ms in float32, while the same attention written as two bf16 matmuls and a softmax took 10.8 ms
(2026-12-03, AMD EPYC; `make bench`, attention_fwd_bwd_vitt_16x112_b8). So on the CPU in bf16 the explicit
form runs; everywhere else (float32, CUDA) SDPA does. The explicit form is what autocast does to any
attention written out: the scores are rounded to bf16 before the softmax, which costs about twice the
output error of the fused kernel (1.1 % against 0.6 % relative to float32 at score std ~4); the step
still matches float32 within the bf16 tolerance (tests/pretrain/test_bf16.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def cpu_bf16(q: Tensor) -> bool:
    """Whether attention over `q` runs in bf16 on the CPU (bf16 inputs, or CPU autocast to bf16)."""
    if q.device.type != "cpu":
        return False
    if q.dtype == torch.bfloat16:
        return True
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """q [..., N, d], k and v [..., M, d] -> [..., N, d]. `attn_mask`: bool, True where a query may attend
    a key, broadcastable to [..., N, M] (SDPA's convention)."""
    if not cpu_bf16(q):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-1, -2)  # [..., N, M]
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return scores.softmax(dim=-1).to(torch.bfloat16) @ v  # [..., N, d]
