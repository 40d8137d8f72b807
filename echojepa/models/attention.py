"""softmax(q kᵀ / √d) v, with the kernel chosen for the dtype, the device and the size.

PyTorch's fused CPU kernel (SDPA's flash attention) gains nothing from bf16: on a 2-core AVX512-BF16 CPU
a forward + backward at ViT-tiny 16 x 112 shapes (8 x 3 heads x 392 tokens x 64) took 25.8 ms in bf16 and
25.7 ms in float32, while the same attention written as two bf16 matmuls and a softmax took 10.8 ms
(2026-12-03, AMD EPYC; `make bench`, attention_fwd_bwd_vitt_16x112_b8). So on the CPU in bf16 the explicit
form runs; everywhere else (float32, CUDA) SDPA does. The explicit form is what autocast does to any
attention written out: the scores are rounded to bf16 before the softmax, which costs about twice the
output error of the fused kernel (1.1 % against 0.6 % relative to float32 at score std ~4); the step
still matches float32 within the bf16 tolerance (tests/pretrain/test_bf16.py).

The explicit form writes every score to memory (and autograd keeps the softmax for the backward), so
once the scores outgrow the cache it is bound by memory traffic, not arithmetic. Past ``CHUNK_FROM``
scores it runs in chunks of ``CHUNK_SCORES`` scores that stay in cache, and the backward recomputes each
chunk's softmax instead of reading a stored one: the same bf16 arithmetic (the same rounding of the
scores, the softmax and its gradient), in a different order. At the scale of a probe's self-attention
over 2 clips x 128 tokens (batch 32, 2 heads of the lr grid, 4 attention heads: 16.8M scores) it pays in
a real probe training: the demo LVEF probe's train_probe_bank took 20.4-20.8 s chunked against 24.5-25.5 s
explicit (AVX512-BF16 EPYC, 2026-12-03; results/bench/attention_form_2026-12-03.json and the script beside
it). Isolated timings are no steady guide, since the explicit form is fast only when the allocator already
holds its 33 MB score buffers: in a fresh process the attention alone ran 62-65 ms explicit against 32-37 ms
chunked, inside `make bench` after the other benchmarks 25 ms against 31 ms (attention_fwd_bwd_probe_lvef;
the whole bf16 probe step, probe_head_bf16_attention_form_demo_lvef, 0.119 against 0.101 s in a fresh
process, 0.081 against 0.088 s in `make bench`). Below ~8M scores the explicit form is the faster
(ViT-tiny pretraining at 8 x 3 x 392²: 7 ms against 9-10 ms, attention_fwd_bwd_vitt_16x112_b8).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK_FROM = 1 << 23  # scores (lead dims x N x M) from which the chunked form runs
CHUNK_SCORES = 1 << 20  # scores per chunk: 2 MB of bf16, resident in cache between matmul and softmax


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
    if math.prod(q.shape[:-1]) * k.shape[-2] >= CHUNK_FROM:
        return chunked_attention(q, k, v, attn_mask)
    return explicit_attention(q, k, v, attn_mask)


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """The bf16 form written out: two bf16 matmuls and a softmax over every score at once."""
    q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-1, -2)  # [..., N, M]
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return scores.softmax(dim=-1).to(torch.bfloat16) @ v  # [..., N, d]


def chunked_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """The same bf16 arithmetic in cache-sized chunks of the lead dims, the softmax recomputed in the
    backward."""
    q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
    return _ChunkedAttention.apply(q, k, v, attn_mask)


def _flat_mask(attn_mask: Tensor | None, q: Tensor, m: int) -> Tensor | None:
    """The mask as [L, N or 1, M] over the flattened lead dims of q (a copy only of its own size)."""
    if attn_mask is None:
        return None
    rows = attn_mask.shape[-2] if attn_mask.ndim >= 2 else 1
    return attn_mask.expand(*q.shape[:-2], rows, m).reshape(-1, rows, m)


def _chunk_probs(q: Tensor, k: Tensor, mask: Tensor | None, scale: float) -> Tensor:
    """softmax(q kᵀ · scale) of one chunk: q [c, N, d], k [c, M, d] -> [c, N, M] bf16."""
    scores = torch.bmm(q * scale, k.transpose(-1, -2))  # [c, N, M]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


class _ChunkedAttention(torch.autograd.Function):
    """The explicit bf16 attention in cache-sized chunks of the lead dims, softmax recomputed in the
    backward (the chunk's scores are never stored)."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None) -> Tensor:  # type: ignore[override]
        n, m = q.shape[-2], k.shape[-2]
        qf, kf, vf = (t.reshape(-1, *t.shape[-2:]) for t in (q, k, v))  # [L, N|M, d]
        mask = _flat_mask(attn_mask, q, m)  # [L, N|1, M]
        ctx.chunk = max(1, CHUNK_SCORES // (n * m))
        ctx.scale = 1.0 / math.sqrt(q.shape[-1])
        out = torch.empty_like(qf)  # [L, N, d]
        for i in range(0, qf.shape[0], ctx.chunk):
            s = slice(i, i + ctx.chunk)
            p = _chunk_probs(qf[s], kf[s], None if mask is None else mask[s], ctx.scale)
            torch.bmm(p, vf[s], out=out[s])
        ctx.save_for_backward(qf, kf, vf, mask)
        ctx.shapes = (q.shape, k.shape, v.shape)
        return out.view(q.shape)

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        qf, kf, vf, mask = ctx.saved_tensors
        go = grad_out.to(torch.bfloat16).reshape(qf.shape)  # [L, N, d]
        dq, dk, dv = torch.empty_like(qf), torch.empty_like(kf), torch.empty_like(vf)
        for i in range(0, qf.shape[0], ctx.chunk):
            s = slice(i, i + ctx.chunk)
            p = _chunk_probs(qf[s], kf[s], None if mask is None else mask[s], ctx.scale)  # [c, N, M]
            torch.bmm(p.transpose(-1, -2), go[s], out=dv[s])
            dp = torch.bmm(go[s], vf[s].transpose(-1, -2))  # [c, N, M]
            ds = p * (dp - (dp * p).sum(dim=-1, keepdim=True)) * ctx.scale  # softmax backward, scaled
            torch.bmm(ds, kf[s], out=dq[s])
            torch.bmm(ds.transpose(-1, -2), qf[s], out=dk[s])
        q_shape, k_shape, v_shape = ctx.shapes
        return dq.view(q_shape), dk.view(k_shape), dv.view(v_shape), None
