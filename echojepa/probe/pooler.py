"""The attentive pooler of the probe heads (V-JEPA 2 layout), computed for K stacked heads.

``depth - 1`` pre-norm self-attention blocks over the tokens, then one cross-attention block (learned
queries, no output projection). The modules only hold parameters (names follow V-JEPA 2's attentive
classifier: ``query_tokens``, ``blocks.i``, ``cross_attention_block``); their computation lives in
``stacked_forward`` so one code path serves 1 or K heads (``echojepa.probe.stacked``).

The cross-attention block is evaluated in a folded form that is exact algebra, not an approximation: the
key bias and the LayerNorm shift add a constant to every score of a query (softmax ignores it), so scores
are ``(W_k^T q * gamma) . z`` on the normalised tokens z; and because the attention weights sum to one,
the value projection is applied after pooling, ``W_v (gamma * sum_n a_n z_n + beta) + b_v``. That replaces
a [N, D] x [D, 2D] projection per head by a [N, D] x [D, heads] product.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from echojepa.models.attention import attention
from echojepa.probe.stacked import (
    Params,
    stacked_affine,
    stacked_layer_norm,
    stacked_linear,
    stacked_mlp,
    sub_params,
)


class _Mlp(nn.Module):
    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(round(dim * mlp_ratio))
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)


class _SelfAttention(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)


class _CrossAttention(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)


class SelfAttentionBlock(nn.Module):
    """Pre-norm block: x + attn(norm1(x)); x + mlp(norm2(x)). No positional embedding (reference)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, norm_eps: float) -> None:
        super().__init__()
        self.num_heads, self.eps = num_heads, norm_eps
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = _SelfAttention(dim)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = _Mlp(dim, mlp_ratio)

    def stacked_forward(self, p: Params, x: Tensor, attn_mask: Tensor | None, shared: bool) -> Tensor:
        k = p["norm1.weight"].shape[0]
        h = stacked_layer_norm(x, sub_params(p, "norm1"), shared, self.eps)  # [K, B, N, D]
        qkv = stacked_linear(h, sub_params(p, "attn.qkv"))  # [K, B, N, 3D]
        q, kk, v = rearrange(qkv, "k b n (three h d) -> three (k b) h n d", three=3, h=self.num_heads)
        o = attention(q, kk, v, attn_mask=attn_mask)  # [K*B, heads, N, hd]
        o = rearrange(o, "(k b) h n d -> k b n (h d)", k=k)  # [K, B, N, D]
        x = x + stacked_linear(o, sub_params(p, "attn.proj"))  # shared input broadcasts to [K, B, N, D]
        return x + stacked_mlp(
            stacked_layer_norm(x, sub_params(p, "norm2"), False, self.eps), sub_params(p, "mlp")
        )


class CrossAttentionBlock(nn.Module):
    """q + xattn(q, norm1(x)) (no output projection); then q + mlp(norm2(q)). Folded, see module doc."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, norm_eps: float) -> None:
        super().__init__()
        self.num_heads, self.eps = num_heads, norm_eps
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.xattn = _CrossAttention(dim)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = _Mlp(dim, mlp_ratio)

    def stacked_forward(
        self, p: Params, query: Tensor, x: Tensor, key_padding_mask: Tensor | None, shared: bool
    ) -> Tensor:
        """query [K, Q, D], tokens x [B, N, D] (shared) or [K, B, N, D] -> [K, B, Q, D]."""
        k, nq, d = query.shape
        nh = self.num_heads
        hd = d // nh
        gamma, beta = p["norm1.weight"], p["norm1.bias"]  # [K, D]
        w_kv, b_kv = p["xattn.kv.weight"], p["xattn.kv.bias"]  # [K, 2D, D], [K, 2D]
        w_k = w_kv[:, :d].reshape(k, nh, hd, d)  # [K, heads, hd, D]
        w_v = w_kv[:, d:].reshape(k, nh, hd, d)
        b_v = b_kv[:, d:].reshape(k, 1, 1, nh, hd)

        qp = stacked_linear(query, sub_params(p, "xattn.q")).reshape(k, nq, nh, hd)  # [K, Q, heads, hd]
        u = torch.einsum("kqhj,khjd->kqhd", qp, w_k) * gamma[:, None, None, :] / math.sqrt(hd)
        u = u.reshape(k, nq * nh, d)  # [K, Q*heads, D]: one score direction per query and attention head

        z = F.layer_norm(x, x.shape[-1:], eps=self.eps)  # [(K,) B, N, D]
        b, n = z.shape[-3], z.shape[-2]
        if shared:  # tokens read once for all heads: one [B*N, D] x [D, K*Q*heads] product
            scores = (z.reshape(b * n, d) @ u.reshape(k * nq * nh, d).T).view(b, n, k, nq * nh)
            scores = scores.permute(2, 0, 3, 1)  # [K, B, Q*heads, N]
        else:
            scores = torch.bmm(z.reshape(k, b * n, d), u.transpose(1, 2))  # [K, B*N, Q*heads]
            scores = scores.view(k, b, n, nq * nh).transpose(2, 3)  # [K, B, Q*heads, N]
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[None, :, None, :], float("-inf"))
        attn = scores.softmax(dim=-1)
        if shared:
            attn_b = attn.transpose(0, 1).reshape(b, k * nq * nh, n)  # [B, K*Q*heads, N]
            pooled = torch.bmm(attn_b, z).view(b, k, nq * nh, d).transpose(0, 1)  # [K, B, Q*heads, D]
        else:
            pooled = torch.matmul(attn, z)  # [K, B, Q*heads, D]
        pooled = stacked_affine(pooled.reshape(k, b, nq, nh, d), gamma, beta, False)  # [K, B, Q, heads, D]
        out = torch.einsum("kbqhd,khjd->kbqhj", pooled, w_v) + b_v  # [K, B, Q, heads, hd]
        q = query.unsqueeze(1) + out.reshape(k, b, nq, d)  # [K, B, Q, D]
        return q + stacked_mlp(
            stacked_layer_norm(q, sub_params(p, "norm2"), False, self.eps), sub_params(p, "mlp")
        )


class AttentivePooler(nn.Module):
    def __init__(
        self, dim: int, depth: int, num_heads: int, mlp_ratio: float, num_queries: int, norm_eps: float
    ) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, dim))
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(dim, num_heads, mlp_ratio, norm_eps) for _ in range(depth - 1)
        )
        self.cross_attention_block = CrossAttentionBlock(dim, num_heads, mlp_ratio, norm_eps)

    def _self_attention_trunk(
        self, p: Params, x: Tensor, key_padding_mask: Tensor | None, shared: bool
    ) -> tuple[Tensor, bool]:
        """The (depth - 1) self-attention blocks; the tokens stay shared across heads only without them."""
        attn_mask = None
        if key_padding_mask is not None and len(self.blocks):
            k = p["query_tokens"].shape[0]
            b, n = key_padding_mask.shape
            # SDPA's boolean mask marks the keys that take part: [K*B, 1, 1, N]
            attn_mask = (~key_padding_mask).view(1, b, 1, 1, n).expand(k, b, 1, 1, n).reshape(k * b, 1, 1, n)
        for i, blk in enumerate(self.blocks):
            x = blk.stacked_forward(sub_params(p, f"blocks.{i}"), x, attn_mask, shared)  # [K, B, N, D]
            shared = False
        return x, shared

    def stacked_forward(self, p: Params, x: Tensor, key_padding_mask: Tensor | None, shared: bool) -> Tensor:
        """x [B, N, D] (shared) or [K, B, N, D] -> pooled queries [K, B, Q, D]."""
        x, shared = self._self_attention_trunk(p, x, key_padding_mask, shared)
        query = p["query_tokens"].squeeze(1)  # [K, Q, D]
        return self.cross_attention_block.stacked_forward(
            sub_params(p, "cross_attention_block"), query, x, key_padding_mask, shared
        )

    def stacked_attention(
        self, p: Params, x: Tensor, key_padding_mask: Tensor | None, shared: bool
    ) -> Tensor:
        """The cross-attention weights of the queries over the tokens (what ``stacked_forward`` pools
        with), computed in the plain unfolded form: x [B, N, D] (shared) or [K, B, N, D] ->
        [K, B, Q, heads, N], each row summing to 1 over the non-padded tokens."""
        x, shared = self._self_attention_trunk(p, x, key_padding_mask, shared)
        cb = self.cross_attention_block
        cp = sub_params(p, "cross_attention_block")
        query = p["query_tokens"].squeeze(1)  # [K, Q, D]
        k, nq, d = query.shape
        nh = cb.num_heads
        hd = d // nh
        q = stacked_linear(query, sub_params(cp, "xattn.q")).reshape(k, nq, nh, hd)  # [K, Q, heads, hd]
        h = stacked_layer_norm(x, sub_params(cp, "norm1"), shared, cb.eps)  # [K, B, N, D]
        w_kv, b_kv = cp["xattn.kv.weight"], cp["xattn.kv.bias"]  # [K, 2D, D], [K, 2D]
        keys = stacked_linear(h, {"weight": w_kv[:, :d], "bias": b_kv[:, :d]})  # [K, B, N, D]
        keys = keys.reshape(*keys.shape[:3], nh, hd)  # [K, B, N, heads, hd]
        scores = torch.einsum("kqhj,kbnhj->kbqhn", q, keys) / math.sqrt(hd)  # [K, B, Q, heads, N]
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[None, :, None, None, :], float("-inf"))
        return scores.softmax(dim=-1)
