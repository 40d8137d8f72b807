"""Probe heads on frozen tokens, trained K at a time in one pass.

Heads
    ``AttentiveProbe`` (V-JEPA 2 layout: one learned query, ``depth - 1`` self-attention blocks over the
    tokens, one cross-attention block without output projection, then ``Linear(D, out)``), ``LinearProbe``
    and ``MLPProbe`` (mean-pool over non-padded tokens + LayerNorm + Linear / 2-layer MLP). Parameter names
    follow V-JEPA 2's attentive classifier (``pooler.query_tokens``, ``pooler.blocks.i``,
    ``pooler.cross_attention_block``, ``linear``).

One probe for every backbone
    Heads built with ``in_dim`` take the backbone's raw tokens [.., in_dim] and first map them to the probe
    width ``embed_dim`` with a fixed ``TokenProjection`` (buffers fit on training tokens, see
    ``echojepa.probe.project``; ``ProbeBank.set_projection``), so the trainable parameters depend on the
    probe width only, never on the backbone. Attentive heads with ``position="sincos"`` then add the fixed
    space-time code of ``echojepa.probe.position`` over the backbone's ``token_grid``: with self-attention
    blocks (depth >= 2) the probe can relate tokens across time, and every block knows where each token is.

K heads in one pass
    Every head computes through ``stacked_forward(params, ...)``, where each parameter carries a leading
    head axis K. A single head runs it with K = 1; ``ProbeBank`` stacks the parameters of its K heads and
    runs it once, so every matmul is one batched kernel over the heads and the tokens are read once. The
    heads keep separate parameters, so one AdamW with one parameter group per head (and the summed loss)
    steps each head exactly like its own optimizer would (no global clipping, no shared scaler).
    Self-attention blocks hold K copies of every activation: ``heads_per_pass`` splits the bank into
    chunks when that memory matters (same results, the tokens are then read once per chunk).

    The cross-attention block is evaluated in a folded form that is exact algebra, not an approximation:
    the key bias and the LayerNorm shift add a constant to every score of a query (softmax ignores it), so
    scores are ``(W_k^T q * gamma) . z`` on the normalised tokens z; and because the attention weights sum
    to one, the value projection is applied after pooling, ``W_v (gamma * sum_n a_n z_n + beta) + b_v``.
    That replaces a [N, D] x [D, 2D] projection per head by a [N, D] x [D, heads] product.

Training (``train_probe_bank``)
    Regression targets are z-scored with the TRAIN split's mean/std (SmoothL1 on z; predictions and MAE
    in real units); classification uses cross-entropy. The head reported is chosen on the validation
    split only (final-epoch metric); the test split never reaches this module's trainer.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import trunc_normal_
from torch import Tensor, nn

from echojepa.io.atomic import atomic_torch_save
from echojepa.models.checkpoint import CheckpointMismatchError, load_state_dict_strict
from echojepa.probe.errors import ProbeInputError
from echojepa.probe.position import POSITION_KINDS, spacetime_code
from echojepa.probe.project import TokenProjection
from echojepa.schedules import ScheduleConfig, lr_at

Params = dict[str, Tensor]

# ---------------------------------------------------------------------------------------------------------
# Stacked primitives: every weight has a leading head axis K; activations are either shared ([B, ...]) or
# per head ([K, B, ...]). Each head's slice is computed by the same kernel shape whatever K is.


def _sub(params: Mapping[str, Tensor], prefix: str) -> Params:
    """The parameters under ``prefix.`` with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in params.items() if k.startswith(prefix + ".")}


def _affine(z: Tensor, w: Tensor, b: Tensor, shared: bool) -> Tensor:
    """Per-head LayerNorm affine: z [(K,) B, ..., D] * w [K, D] + b [K, D] -> [K, B, ..., D]."""
    extra = z.ndim - (1 if shared else 2)  # dims between the head axis and D
    shape = (w.shape[0],) + (1,) * extra + (w.shape[-1],)
    return z * w.view(shape) + b.view(shape)


def _layer_norm(x: Tensor, p: Params, shared: bool, eps: float) -> Tensor:
    z = F.layer_norm(x, x.shape[-1:], eps=eps)  # normalised once, even for K heads on shared input
    return _affine(z, p["weight"], p["bias"], shared)


def _linear(x: Tensor, p: Params) -> Tensor:
    """x [K, B, ..., in] -> [K, B, ..., out] with weight [K, out, in] and bias [K, out]."""
    k, lead, d_in = x.shape[0], x.shape[1:-1], x.shape[-1]
    w = p["weight"]
    y = torch.baddbmm(p["bias"].unsqueeze(1), x.reshape(k, -1, d_in), w.transpose(1, 2))  # [K, M, out]
    return y.reshape(k, *lead, w.shape[1])


def _mlp(x: Tensor, p: Params) -> Tensor:
    return _linear(F.gelu(_linear(x, _sub(p, "fc1"))), _sub(p, "fc2"))


def _check_padding(key_padding_mask: Tensor | None, batch: int, num_tokens: int) -> None:
    if key_padding_mask is None:
        return
    if key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != (batch, num_tokens):
        raise ValueError(
            f"key_padding_mask must be bool [B={batch}, N={num_tokens}] (True = padding), got "
            f"{key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
        )
    if bool(key_padding_mask.all(dim=1).any()):
        raise ValueError("key_padding_mask pads every token of at least one sample: nothing to attend to")


def _flatten_segments(tokens: Tensor, key_padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """[B, S, N, D] (clips/segments of one item) -> [B, S*N, D]: segments are concatenated on the token
    axis before the probe, as in the reference protocol."""
    if tokens.ndim == 4:
        tokens = tokens.flatten(1, 2)
        if key_padding_mask is not None and key_padding_mask.ndim == 3:
            key_padding_mask = key_padding_mask.flatten(1, 2)
    if tokens.ndim != 3:
        raise ValueError(f"expected tokens [B, N, D] or [B, S, N, D], got shape {tuple(tokens.shape)}")
    return tokens, key_padding_mask


def _masked_mean(tokens: Tensor, key_padding_mask: Tensor | None) -> Tensor:
    """Mean over non-padded tokens: [B, N, D] -> [B, D]."""
    if key_padding_mask is None:
        return tokens.mean(dim=1)
    pad = key_padding_mask.unsqueeze(-1)  # [B, N, 1]
    count = (~pad).sum(dim=1).to(tokens.dtype)  # [B, 1]
    return tokens.masked_fill(pad, 0.0).sum(dim=1) / count  # masked_fill, not * 0: NaN * 0 is NaN


# ---------------------------------------------------------------------------------------------------------
# Parameter containers. Their computation lives in `stacked_forward` so one code path serves 1 or K heads.


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
        h = _layer_norm(x, _sub(p, "norm1"), shared, self.eps)  # [K, B, N, D]
        qkv = _linear(h, _sub(p, "attn.qkv"))  # [K, B, N, 3D]
        q, kk, v = rearrange(qkv, "k b n (three h d) -> three (k b) h n d", three=3, h=self.num_heads)
        o = F.scaled_dot_product_attention(q, kk, v, attn_mask=attn_mask)  # [K*B, heads, N, hd]
        o = rearrange(o, "(k b) h n d -> k b n (h d)", k=k)  # [K, B, N, D]
        x = x + _linear(o, _sub(p, "attn.proj"))  # shared input broadcasts to [K, B, N, D]
        return x + _mlp(_layer_norm(x, _sub(p, "norm2"), False, self.eps), _sub(p, "mlp"))


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

        qp = _linear(query, _sub(p, "xattn.q")).reshape(k, nq, nh, hd)  # [K, Q, heads, hd]
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
        pooled = _affine(pooled.reshape(k, b, nq, nh, d), gamma, beta, False)  # [K, B, Q, heads, D]
        out = torch.einsum("kbqhd,khjd->kbqhj", pooled, w_v) + b_v  # [K, B, Q, heads, hd]
        q = query.unsqueeze(1) + out.reshape(k, b, nq, d)  # [K, B, Q, D]
        return q + _mlp(_layer_norm(q, _sub(p, "norm2"), False, self.eps), _sub(p, "mlp"))


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
            x = blk.stacked_forward(_sub(p, f"blocks.{i}"), x, attn_mask, shared)  # [K, B, N, D]
            shared = False
        return x, shared

    def stacked_forward(self, p: Params, x: Tensor, key_padding_mask: Tensor | None, shared: bool) -> Tensor:
        """x [B, N, D] (shared) or [K, B, N, D] -> pooled queries [K, B, Q, D]."""
        x, shared = self._self_attention_trunk(p, x, key_padding_mask, shared)
        query = p["query_tokens"].squeeze(1)  # [K, Q, D]
        return self.cross_attention_block.stacked_forward(
            _sub(p, "cross_attention_block"), query, x, key_padding_mask, shared
        )

    def stacked_attention(
        self, p: Params, x: Tensor, key_padding_mask: Tensor | None, shared: bool
    ) -> Tensor:
        """The cross-attention weights of the queries over the tokens (what ``stacked_forward`` pools
        with), computed in the plain unfolded form: x [B, N, D] (shared) or [K, B, N, D] ->
        [K, B, Q, heads, N], each row summing to 1 over the non-padded tokens."""
        x, shared = self._self_attention_trunk(p, x, key_padding_mask, shared)
        cb = self.cross_attention_block
        cp = _sub(p, "cross_attention_block")
        query = p["query_tokens"].squeeze(1)  # [K, Q, D]
        k, nq, d = query.shape
        nh = cb.num_heads
        hd = d // nh
        q = _linear(query, _sub(cp, "xattn.q")).reshape(k, nq, nh, hd)  # [K, Q, heads, hd]
        h = _layer_norm(x, _sub(cp, "norm1"), shared, cb.eps)  # [K, B, N, D]
        w_kv, b_kv = cp["xattn.kv.weight"], cp["xattn.kv.bias"]  # [K, 2D, D], [K, 2D]
        keys = _linear(h, {"weight": w_kv[:, :d], "bias": b_kv[:, :d]})  # [K, B, N, D]
        keys = keys.reshape(*keys.shape[:3], nh, hd)  # [K, B, N, heads, hd]
        scores = torch.einsum("kqhj,kbnhj->kbqhn", q, keys) / math.sqrt(hd)  # [K, B, Q, heads, N]
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[None, :, None, None, :], float("-inf"))
        return scores.softmax(dim=-1)


# ---------------------------------------------------------------------------------------------------------
# Heads


class StackableHead(nn.Module):
    """A probe head whose math runs for K stacked copies at once (``stacked_forward``)."""

    kind: str = ""

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = dict(config)  # plain kwargs: enough to rebuild the head (saved with probe checkpoints)
        self.out_dim = int(config["out_dim"])
        in_dim = config.get("in_dim")
        # raw backbone tokens -> probe width; None: tokens arrive at the probe width already
        self.input_map = None if in_dim is None else TokenProjection(int(in_dim), int(config["embed_dim"]))

    def project(self, tokens: Tensor) -> Tensor:
        """Backbone tokens [..., in_dim] -> [..., embed_dim] through the fixed map (identity without one)."""
        return tokens if self.input_map is None else self.input_map(tokens)

    def stacked_forward(
        self,
        params: Params,
        tokens: Tensor,
        key_padding_mask: Tensor | None = None,
        presence: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        raise NotImplementedError

    def forward(
        self,
        tokens: Tensor,
        key_padding_mask: Tensor | None = None,
        presence: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One head: tokens -> [B, out_dim]."""
        params = {n: p.unsqueeze(0) for n, p in self.named_parameters()}
        return self.stacked_forward(params, tokens, key_padding_mask, presence, generator)[0]


def _single_view_only(kind: str, presence: Tensor | None) -> None:
    if presence is not None:
        raise ValueError(
            f"{kind} probe takes one token sequence per item; use a multi-view probe for presence"
        )


class AttentiveProbe(StackableHead):
    kind = "attentive"

    def __init__(
        self,
        embed_dim: int,
        out_dim: int,
        depth: int = 4,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_queries: int = 1,
        norm_eps: float = 1e-6,
        init_std: float = 0.02,
        in_dim: int | None = None,
        token_grid: Sequence[int] | None = None,
        position: str = "none",
        position_periods: Sequence[float] = (8.0, 1.0 / 32),
    ) -> None:
        token_grid = None if token_grid is None else [int(g) for g in token_grid]
        super().__init__(
            embed_dim=embed_dim, out_dim=out_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
            num_queries=num_queries, norm_eps=norm_eps, init_std=init_std, in_dim=in_dim,
            token_grid=token_grid, position=position, position_periods=[float(p) for p in position_periods],
        )  # fmt: skip
        if depth < 1 or num_queries < 1:
            raise ValueError(f"depth ({depth}) and num_queries ({num_queries}) must be >= 1")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if position not in POSITION_KINDS:
            raise ValueError(f"position must be one of {POSITION_KINDS}, got {position!r}")
        self.token_grid, self.position = token_grid, position
        self.position_periods = tuple(float(p) for p in position_periods)
        self.pooler = AttentivePooler(embed_dim, depth, num_heads, mlp_ratio, num_queries, norm_eps)
        self.linear = nn.Linear(embed_dim, out_dim)
        self._init_weights(init_std)

    def _init_weights(self, std: float) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=std)
                nn.init.zeros_(m.bias)
        trunc_normal_(self.pooler.query_tokens, std=std)
        with torch.no_grad():  # residual branches scaled 1/sqrt(2 * layer), as in the reference pooler
            for layer, blk in enumerate(self.pooler.blocks, start=1):
                blk.attn.proj.weight.div_(math.sqrt(2.0 * layer))
                blk.mlp.fc2.weight.div_(math.sqrt(2.0 * layer))
            last = len(self.pooler.blocks) + 1
            self.pooler.cross_attention_block.mlp.fc2.weight.div_(math.sqrt(2.0 * last))

    def embed_tokens(self, tokens: Tensor) -> Tensor:
        """Backbone tokens [..., L, in_dim] -> probe tokens [..., L, D]: the fixed projection, plus the
        space-time code of L tokens (as many whole token grids as L holds: the segments in order)."""
        x = self.project(tokens)
        if self.position == "none":
            return x
        code = spacetime_code(x.shape[-2], self.token_grid, x.shape[-1], self.position_periods)
        return x + code.to(device=x.device, dtype=x.dtype)

    def stacked_forward(self, params, tokens, key_padding_mask=None, presence=None, generator=None):
        _single_view_only(self.kind, presence)
        tokens, key_padding_mask = _flatten_segments(tokens, key_padding_mask)
        return self.pooled_forward(params, self.embed_tokens(tokens), key_padding_mask, shared=True)

    def pooled_forward(
        self, params: Params, x: Tensor, key_padding_mask: Tensor | None, shared: bool
    ) -> Tensor:
        """x [B, N, D] (shared by the heads) or [K, B, N, D] (per head) -> [K, B, out_dim]."""
        b, n = x.shape[-3], x.shape[-2]
        _check_padding(key_padding_mask, b, n)
        if key_padding_mask is not None:
            # padded tokens become exact zeros: whatever they held (even NaN) cannot leak through 0 * x
            x = x.masked_fill(key_padding_mask.unsqueeze(-1), 0.0)
        q = self.pooler.stacked_forward(_sub(params, "pooler"), x, key_padding_mask, shared)  # [K, B, Q, D]
        return _linear(q.mean(dim=2), _sub(params, "linear"))  # [K, B, out]

    def attention_weights(self, tokens: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """Cross-attention weights of this head's query over the tokens, per attention head (averaged
        over queries when there are several): tokens [B, N, D] or [B, S, N, D] -> [B, heads, N] (S*N
        for segments, in token order). Padded tokens get weight 0; each row sums to 1."""
        tokens, key_padding_mask = _flatten_segments(tokens, key_padding_mask)
        _check_padding(key_padding_mask, tokens.shape[0], tokens.shape[1])
        tokens = self.embed_tokens(tokens)
        if key_padding_mask is not None:
            tokens = tokens.masked_fill(key_padding_mask.unsqueeze(-1), 0.0)
        params = {n: p.unsqueeze(0) for n, p in self.named_parameters()}
        weights = self.pooler.stacked_attention(_sub(params, "pooler"), tokens, key_padding_mask, True)
        return weights[0].mean(dim=1)  # [B, heads, N]


class LinearProbe(StackableHead):
    kind = "linear"

    def __init__(
        self,
        embed_dim: int,
        out_dim: int,
        norm_eps: float = 1e-6,
        init_std: float = 0.02,
        in_dim: int | None = None,
    ) -> None:
        super().__init__(
            embed_dim=embed_dim, out_dim=out_dim, norm_eps=norm_eps, init_std=init_std, in_dim=in_dim
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.linear = nn.Linear(embed_dim, out_dim)
        trunc_normal_(self.linear.weight, std=init_std)
        nn.init.zeros_(self.linear.bias)

    def stacked_forward(self, params, tokens, key_padding_mask=None, presence=None, generator=None):
        _single_view_only(self.kind, presence)
        tokens, key_padding_mask = _flatten_segments(tokens, key_padding_mask)
        _check_padding(key_padding_mask, tokens.shape[0], tokens.shape[1])
        pooled = _layer_norm(
            _masked_mean(self.project(tokens), key_padding_mask), _sub(params, "norm"), True, self.norm.eps
        )
        return _linear(pooled, _sub(params, "linear"))  # [K, B, out]


class MLPProbe(StackableHead):
    kind = "mlp"

    def __init__(
        self,
        embed_dim: int,
        out_dim: int,
        hidden_dim: int | None = None,
        norm_eps: float = 1e-6,
        init_std: float = 0.02,
        in_dim: int | None = None,
    ) -> None:
        hidden_dim = int(hidden_dim or embed_dim)
        super().__init__(
            embed_dim=embed_dim, out_dim=out_dim, hidden_dim=hidden_dim, norm_eps=norm_eps,
            init_std=init_std, in_dim=in_dim,
        )  # fmt: skip
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.fc1 = nn.Linear(embed_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim)
        for m in (self.fc1, self.fc2):
            trunc_normal_(m.weight, std=init_std)
            nn.init.zeros_(m.bias)

    def stacked_forward(self, params, tokens, key_padding_mask=None, presence=None, generator=None):
        _single_view_only(self.kind, presence)
        tokens, key_padding_mask = _flatten_segments(tokens, key_padding_mask)
        _check_padding(key_padding_mask, tokens.shape[0], tokens.shape[1])
        pooled = _layer_norm(
            _masked_mean(self.project(tokens), key_padding_mask), _sub(params, "norm"), True, self.norm.eps
        )
        return _mlp(pooled, params)  # [K, B, out]


def head_class(kind: str) -> type[StackableHead]:
    from echojepa.probe.multiview import LateFusionProbe, MultiViewProbe  # multiview builds on this module

    kinds: dict[str, type[StackableHead]] = {
        "attentive": AttentiveProbe, "linear": LinearProbe, "mlp": MLPProbe,
        "multiview": MultiViewProbe, "late_fusion": LateFusionProbe,
    }  # fmt: skip
    if kind not in kinds:
        raise ValueError(f"unknown probe kind {kind!r}; valid: {', '.join(sorted(kinds))}")
    return kinds[kind]


# ---------------------------------------------------------------------------------------------------------
# The bank


@dataclass(frozen=True)
class HeadSpec:
    """Hyper-parameters of one head. Heads sharing a seed start from identical weights, so the lr x wd grid
    compares optimisation settings only."""

    lr: float
    wd: float
    seed: int = 0


def grid_specs(lrs: Sequence[float], wds: Sequence[float], seeds: Sequence[int] = (0,)) -> list[HeadSpec]:
    """Heads for every (lr, wd, seed), ordered lr-major."""
    return [HeadSpec(float(lr), float(wd), int(s)) for lr, wd, s in itertools.product(lrs, wds, seeds)]


class ProbeBank(nn.Module):
    """K heads of one kind and architecture, run in one pass: ``forward(...) -> [K, B, out_dim]``."""

    def __init__(
        self,
        kind: str,
        head_kwargs: Mapping[str, Any],
        specs: Sequence[HeadSpec],
        heads_per_pass: int | None = None,
    ) -> None:
        super().__init__()
        if not specs:
            raise ValueError("a ProbeBank needs at least one head spec")
        if heads_per_pass is not None and heads_per_pass < 1:
            raise ValueError(f"heads_per_pass must be >= 1 or None, got {heads_per_pass}")
        # None: all heads in one pass. A smaller chunk bounds activation memory (K copies of every
        # self-attention activation) at the price of reading the tokens once per chunk.
        self.heads_per_pass = heads_per_pass
        self.kind = kind
        self.specs = [s if isinstance(s, HeadSpec) else HeadSpec(**s) for s in specs]
        cls = head_class(kind)
        heads = []
        for spec in self.specs:
            # each head's init depends on its own seed only, not on its position in the bank
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(spec.seed)
                heads.append(cls(**head_kwargs))
        self.heads = nn.ModuleList(heads)
        self.head_kwargs = dict(heads[0].config)
        self.out_dim = heads[0].out_dim
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))
        self.task: ProbeTask | None = None

    def __len__(self) -> int:
        return len(self.heads)

    def stacked_params(self, heads: Sequence[nn.Module] | None = None) -> Params:
        heads = list(self.heads) if heads is None else heads
        names = [n for n, _ in heads[0].named_parameters()]
        per_head = [dict(h.named_parameters()) for h in heads]
        return {n: torch.stack([p[n] for p in per_head]) for n in names}

    def forward(
        self,
        tokens: Tensor,
        key_padding_mask: Tensor | None = None,
        presence: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        chunk = self.heads_per_pass or len(self.heads)
        outs = [
            self.heads[0].stacked_forward(
                self.stacked_params(self.heads[i : i + chunk]), tokens, key_padding_mask, presence, generator
            )
            for i in range(0, len(self.heads), chunk)
        ]  # each pass draws its own view dropout (multi-view heads)
        return outs[0] if len(outs) == 1 else torch.cat(outs)  # [K, B, out]

    def param_groups(self) -> list[dict[str, Any]]:
        """Per head: one group with its lr/wd on weights, one with its lr and no decay on biases and 1-D
        parameters (norms). Tagged with ``head`` so schedules can be set per head."""
        groups = []
        for k, (spec, head) in enumerate(zip(self.specs, self.heads)):
            decay, no_decay = [], []
            for name, p in head.named_parameters():
                (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
            groups.append({"params": decay, "lr": spec.lr, "weight_decay": spec.wd, "head": k})
            groups.append({"params": no_decay, "lr": spec.lr, "weight_decay": 0.0, "head": k})
        return groups

    def set_projection(self, shift: np.ndarray | Tensor, weight: np.ndarray | Tensor) -> None:
        """Give every head the same fixed token projection (``echojepa.probe.project``): shift [in_dim],
        weight [in_dim, embed_dim]. The heads must have been built with ``in_dim``."""
        for head in self.heads:
            if head.input_map is None:
                raise ValueError("this bank's heads were built without in_dim: they take no projection")
            head.input_map.set(shift, weight)

    def trainable_parameters(self) -> int:
        """Trainable parameters of one head (the fixed projection is a buffer and does not count)."""
        return sum(p.numel() for p in self.heads[0].parameters() if p.requires_grad)

    def describe(self) -> dict[str, Any]:
        """What every backbone's probe is, for records: kind, width, input width, depth, position code,
        token grid, trainable parameters per head and number of heads."""
        h = self.head_kwargs
        return {
            "kind": self.kind, "width": int(h["embed_dim"]), "in_dim": h.get("in_dim"),
            "depth": h.get("depth"), "position": h.get("position"), "token_grid": h.get("token_grid"),
            "trainable_params": self.trainable_parameters(), "heads": len(self),
        }  # fmt: skip

    def export_head(self, k: int) -> StackableHead:
        """A standalone copy of head k (same forward, [B, out_dim])."""
        return copy.deepcopy(self.heads[k])

    def arch(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "head_kwargs": dict(self.head_kwargs),
            "specs": [asdict(s) for s in self.specs],
        }


# Probe kinds that attend over tokens, hence take a position code over the backbone's token grid.
ATTENTIVE_KINDS = frozenset({"attentive", "multiview", "late_fusion"})


def build_probe_bank(
    cfg: Mapping[str, Any],
    embed_dim: int,
    out_dim: int,
    token_grid: Sequence[int] | None = None,
) -> ProbeBank:
    """A bank from a conf/probe/*.yaml mapping (kind, head, grid {lr, wd, seeds}, heads_per_pass, width).

    ``embed_dim`` is the backbone's token width. With ``width`` set, heads are built at that width and
    take the backbone's tokens through a fixed projection (``in_dim = embed_dim``; fit it with
    ``ProbeBank.set_projection``), so every backbone gets the same head; attentive kinds also get the
    backbone's ``token_grid`` for their position code. Without ``width`` the heads are built at the
    backbone's width (no projection)."""
    grid = cfg["grid"]
    specs = grid_specs(grid["lr"], grid["wd"], grid.get("seeds", (0,)))
    kwargs = dict(cfg.get("head") or {})
    width = cfg.get("width")
    kwargs.update(out_dim=int(out_dim))
    if width is None:
        kwargs.update(embed_dim=int(embed_dim))
    else:
        kwargs.update(embed_dim=int(width), in_dim=int(embed_dim))
    kind = str(cfg["kind"])
    if kind in ATTENTIVE_KINDS and token_grid is not None:
        kwargs.update(token_grid=[int(g) for g in token_grid])
    return ProbeBank(kind, kwargs, specs, heads_per_pass=cfg.get("heads_per_pass"))


def probe_schedule(cfg: Mapping[str, Any]) -> ProbeSchedule:
    """The ``schedule`` block of a conf/probe/*.yaml mapping."""
    sched = dict(cfg.get("schedule") or {})
    if "betas" in sched:
        sched["betas"] = tuple(float(b) for b in sched["betas"])
    return ProbeSchedule(**sched)


# ---------------------------------------------------------------------------------------------------------
# Task: loss, target normalisation, predictions, validation metric


_METRICS_HIGHER_IS_BETTER = {"mae": False, "rmse": False, "accuracy": True, "balanced_accuracy": True}


@dataclass
class ProbeTask:
    """``regression``: targets z-scored with the train split's ``target_mean``/``target_std``; SmoothL1 on z.
    ``classification``: cross-entropy over ``num_classes``."""

    kind: str
    num_classes: int | None = None
    target_mean: float | None = None
    target_std: float | None = None
    val_metric: str | None = None  # default: mae (regression), balanced_accuracy (classification)
    smooth_l1_beta: float = 1.0
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("regression", "classification"):
            raise ValueError(f"task kind must be 'regression' or 'classification', got {self.kind!r}")
        if self.kind == "classification" and (self.num_classes is None or self.num_classes < 2):
            raise ValueError(f"classification needs num_classes >= 2, got {self.num_classes}")
        if self.val_metric is None:
            self.val_metric = "mae" if self.kind == "regression" else "balanced_accuracy"
        allowed = ("mae", "rmse") if self.kind == "regression" else ("accuracy", "balanced_accuracy")
        if self.val_metric not in allowed:
            raise ValueError(f"val_metric {self.val_metric!r} does not fit {self.kind}; valid: {allowed}")
        if self.target_std is not None and not self.target_std > 0:
            raise ValueError(f"target_std must be > 0, got {self.target_std}")

    @property
    def out_dim(self) -> int:
        return 1 if self.kind == "regression" else int(self.num_classes)

    @property
    def higher_is_better(self) -> bool:
        return _METRICS_HIGHER_IS_BETTER[self.val_metric]

    @property
    def normalised(self) -> bool:
        return self.kind != "regression" or (self.target_mean is not None and self.target_std is not None)

    def with_train_targets(self, targets: np.ndarray | Tensor) -> ProbeTask:
        """A copy whose z-scoring uses these (train split) targets."""
        t = np.asarray(targets, dtype=np.float64)
        if t.size < 2:
            raise ValueError(f"need >= 2 train targets to z-score, got {t.size}")
        std = float(t.std(ddof=1))
        if not std > 0:
            raise ValueError("train targets have zero spread: cannot z-score")
        return ProbeTask(**{**asdict(self), "target_mean": float(t.mean()), "target_std": std})

    def _require_stats(self) -> None:
        if not self.normalised:
            raise ValueError("regression task has no target_mean/target_std: fit them on the train split")

    def normalise(self, target: Tensor) -> Tensor:
        self._require_stats()
        return (target.float() - self.target_mean) / self.target_std

    def denormalise(self, z: Tensor) -> Tensor:
        self._require_stats()
        return z * self.target_std + self.target_mean

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        """outputs [K, B, out], target [B] -> per-head mean loss [K]."""
        k, b = outputs.shape[:2]
        if self.kind == "regression":
            z = self.normalise(target).to(outputs.dtype)  # [B]
            per = F.smooth_l1_loss(
                outputs[..., 0], z.expand(k, b), reduction="none", beta=self.smooth_l1_beta
            )
            return per.mean(dim=1)
        per = F.cross_entropy(outputs.reshape(k * b, -1), target.long().repeat(k), reduction="none")
        return per.view(k, b).mean(dim=1)

    def predictions(self, outputs: Tensor) -> Tensor:
        """[K, B, out] -> real units [K, B] (regression) or class probabilities [K, B, C]."""
        if self.kind == "regression":
            return self.denormalise(outputs[..., 0].float())
        return outputs.float().softmax(dim=-1)

    def score(self, predictions: np.ndarray, target: np.ndarray) -> float:
        """Validation metric of one head's predictions."""
        if self.val_metric == "mae":
            return float(np.mean(np.abs(predictions - target)))
        if self.val_metric == "rmse":
            return float(np.sqrt(np.mean((predictions - target) ** 2)))
        pred = predictions.argmax(axis=-1)
        target = target.astype(np.int64)
        if self.val_metric == "accuracy":
            return float(np.mean(pred == target))
        recalls = [np.mean(pred[target == c] == c) for c in np.unique(target)]
        return float(np.mean(recalls))


# ---------------------------------------------------------------------------------------------------------
# Training, prediction


@dataclass
class ProbeSchedule:
    """Per-head lr: linear warmup from ``start_lr_factor * lr`` then cosine to ``final_lr_factor * lr``."""

    warmup_epochs: float = 0.0
    start_lr_factor: float = 0.0
    final_lr_factor: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


@dataclass
class TrainResult:
    best_head: int
    val_metric_name: str
    val_metrics: list[float]  # final-epoch validation metric per head
    higher_is_better: bool
    specs: list[HeadSpec]
    history: list[dict[str, Any]] = field(default_factory=list)  # per epoch: train_loss [K], val [K] | None
    bank_state: dict[str, Tensor] = field(default_factory=dict)
    task: ProbeTask | None = None
    steps: int = 0  # optimizer steps taken (every head takes each one)
    probe: dict[str, Any] = field(default_factory=dict)  # ProbeBank.describe() of the trained bank

    @property
    def chosen(self) -> dict[str, Any]:
        """The results record's ``chosen`` entry: selected on validation."""
        spec = self.specs[self.best_head]
        return {
            "head": self.best_head, "lr": spec.lr, "wd": spec.wd,
            "val_metric": self.val_metrics[self.best_head], "val_name": self.val_metric_name,
            "epochs": len(self.history), "steps": self.steps, "probe": dict(self.probe),
        }  # fmt: skip


LoaderLike = Iterable[Mapping[str, Any]] | Callable[[int], Iterable[Mapping[str, Any]]]


def _epoch_loader(loader: LoaderLike, epoch: int) -> Iterable[Mapping[str, Any]]:
    """A loader, or a callable epoch -> loader (e.g. to draw one cached augmented view per epoch)."""
    return loader(epoch) if callable(loader) else loader


def _batch_inputs(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    tokens = batch["tokens"].to(device, non_blocking=True).float()  # caches hold float16
    mask = batch.get("mask")
    presence = batch.get("presence")
    return {
        "tokens": tokens,
        "key_padding_mask": None if mask is None else mask.to(device).bool(),
        "presence": None if presence is None else presence.to(device).bool(),
    }


def select_best_head(val_metrics: Sequence[float], higher_is_better: bool) -> int:
    """Index of the best finite validation metric (diverged heads are never chosen)."""
    vals = np.asarray(val_metrics, dtype=np.float64)
    if not np.isfinite(vals).any():
        raise ValueError("every head has a non-finite validation metric: all heads diverged")
    vals = np.where(np.isfinite(vals), vals, -np.inf if higher_is_better else np.inf)
    return int(np.argmax(vals) if higher_is_better else np.argmin(vals))


def _collect_targets(loader: LoaderLike) -> np.ndarray:
    return np.concatenate(
        [np.asarray(b["target"], dtype=np.float64).reshape(-1) for b in _epoch_loader(loader, 0)]
    )


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        disable=not enabled,
    )  # fmt: skip


def train_probe_bank(
    bank: ProbeBank,
    train_loader: LoaderLike,
    val_loader: Iterable[Mapping[str, Any]],
    task: ProbeTask,
    epochs: int,
    device: str | torch.device = "cpu",
    progress: bool = False,
    *,
    schedule: ProbeSchedule | None = None,
    seed: int = 0,
    min_steps: int = 0,
    val_passes: int | None = None,
) -> TrainResult:
    """Train all heads of ``bank`` together (one AdamW, one group pair per head, summed loss).

    Loaders yield ``{"tokens": [B, N, D] | [B, S, N, D], "mask": [B, N] bool | None, "presence": [B, S] bool
    (multi-view), "target": [B]}``. ``train_loader`` may be a callable ``epoch -> loader``. A regression
    task without z-scoring stats gets them from the train loader's targets. The best head is chosen on
    ``val_loader`` only.

    ``min_steps`` lengthens training on small sets: epochs become ``max(epochs, ceil(min_steps /
    steps_per_epoch))``, so 20 epochs of 3 batches do not leave the heads undertrained. ``val_passes``
    bounds how many epochs end with a validation pass (None: every epoch; the last epoch always has one,
    and it is the one the head is chosen on), which dominates the cost of many short epochs.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if task.out_dim != bank.out_dim:
        raise ValueError(f"task needs out_dim {task.out_dim}, bank heads give {bank.out_dim}")
    schedule = schedule or ProbeSchedule()
    if not task.normalised:
        task = task.with_train_targets(_collect_targets(train_loader))
    device = torch.device(device)
    bank.to(device)
    bank.task = task
    optimizer = torch.optim.AdamW(bank.param_groups(), betas=schedule.betas, eps=schedule.eps)
    steps_per_epoch = len(_epoch_loader(train_loader, 0))  # type: ignore[arg-type]
    if min_steps > 0 and steps_per_epoch > 0:
        epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))
    val_every = max(1, math.ceil(epochs / val_passes)) if val_passes else 1
    total = epochs * steps_per_epoch
    warmup = int(round(schedule.warmup_epochs * steps_per_epoch))
    group_sched = [
        ScheduleConfig(
            kind="warmup_cosine",
            lr=g["lr"],
            start_lr=g["lr"] * schedule.start_lr_factor,
            final_lr=g["lr"] * schedule.final_lr_factor,
            warmup_steps=warmup,
            total_steps=total,
        )  # fmt: skip
        for g in optimizer.param_groups
    ]
    generator = torch.Generator().manual_seed(seed)  # view dropout draws
    history: list[dict[str, Any]] = []
    step = 0
    val_metrics: list[float] = []
    with _progress(progress) as bar:
        job = bar.add_task(f"probes x{len(bank)}", total=total)
        for epoch in range(epochs):
            bank.train()
            loss_sum = torch.zeros(len(bank), device=device)
            for batch in _epoch_loader(train_loader, epoch):
                for group, cfg in zip(optimizer.param_groups, group_sched):
                    group["lr"] = lr_at(step, cfg)
                inputs = _batch_inputs(batch, device)
                per_head = task.loss(bank(**inputs, generator=generator), batch["target"].to(device))  # [K]
                optimizer.zero_grad(set_to_none=True)
                per_head.sum().backward()  # heads share no parameter: the sum keeps their gradients apart
                optimizer.step()
                bank.trained_steps += 1
                loss_sum += per_head.detach()
                step += 1
                bar.advance(job)
            val: list[float] | None = None
            if (epoch + 1) % val_every == 0 or epoch == epochs - 1:  # selection reads the last epoch's
                val_pred, val_target = _predict_all(bank, val_loader, task, device)
                val = val_metrics = [task.score(val_pred[k], val_target) for k in range(len(bank))]
            history.append(
                {"epoch": epoch, "train_loss": (loss_sum / max(steps_per_epoch, 1)).tolist(), "val": val}
            )
    best = select_best_head(val_metrics, task.higher_is_better)
    return TrainResult(
        best_head=best, val_metric_name=str(task.val_metric), val_metrics=val_metrics,
        higher_is_better=task.higher_is_better, specs=list(bank.specs), history=history,
        bank_state={k: v.detach().cpu().clone() for k, v in bank.state_dict().items()}, task=task,
        steps=step, probe=bank.describe(),
    )  # fmt: skip


@torch.no_grad()
def _predict_all(
    bank: ProbeBank, loader: Iterable[Mapping[str, Any]], task: ProbeTask, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    was_training = bank.training
    bank.eval()
    preds, targets = [], []
    for batch in loader:
        preds.append(task.predictions(bank(**_batch_inputs(batch, device))).cpu().numpy())
        if "target" in batch and batch["target"] is not None:
            targets.append(np.asarray(batch["target"]).reshape(-1))
    bank.train(was_training)
    if not preds:
        raise ValueError("loader yielded no batches")
    target = np.concatenate(targets) if targets else np.empty(0)
    return np.concatenate(preds, axis=1), target  # [K, n(, C)], [n]


def predict(
    bank: ProbeBank,
    loader: Iterable[Mapping[str, Any]],
    head: int | None = None,
    task: ProbeTask | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Predictions in real units [n] (regression) or class probabilities [n, C]; all heads stacked first
    ([K, n(, C)]) when ``head`` is None. Refuses a bank that was never trained."""
    task = task or bank.task
    if task is None:
        raise ValueError("predict needs the ProbeTask (pass task= or use a bank from train/load_probe)")
    if int(bank.trained_steps) == 0:
        raise ValueError("refusing to predict with an untrained probe bank (trained_steps == 0)")
    if head is not None and not 0 <= head < len(bank):
        raise ValueError(f"head {head} out of range for a bank of {len(bank)}")
    device = torch.device(device) if device is not None else next(bank.parameters()).device
    pred, _ = _predict_all(bank, loader, task, device)
    return pred if head is None else pred[head]


# ---------------------------------------------------------------------------------------------------------
# Probe checkpoints

_PROBE_FORMAT = "echojepa-probe"
_PROBE_VERSION = 2  # 2: heads carry the fixed token projection and position code (one probe width)


def _check_plain(value: Any, where: str) -> None:
    """Only types ``torch.load(weights_only=True)`` reads back."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str | int):
                raise ValueError(f"probe meta key {where}.{k!r} must be str or int")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise ValueError(f"probe meta {where} is a {type(value).__name__}; use str/int/float/bool/list/dict")


def save_probe(
    path: str | Path, bank: ProbeBank, task: ProbeTask, meta: Mapping[str, Any] | None = None
) -> None:
    """Atomic; holds only tensors and plain types (loadable with ``torch.load(weights_only=True)``)."""
    if int(bank.trained_steps) == 0:
        raise ValueError(f"refusing to save an untrained probe bank to {path}")
    _check_plain(dict(meta or {}), "meta")
    atomic_torch_save(
        {
            "format": _PROBE_FORMAT,
            "version": _PROBE_VERSION,
            "arch": bank.arch(),
            "task": asdict(task),
            "meta": dict(meta or {}),
            "state_dict": {k: v.detach().cpu() for k, v in bank.state_dict().items()},
        },  # fmt: skip
        path,
    )


class ProbeCheckpointError(ProbeInputError):
    """A probe checkpoint that must not be used for evaluation (the message names the file and why)."""


def load_probe(path: str | Path) -> tuple[ProbeBank, ProbeTask, dict[str, Any]]:
    """Rebuild the bank from the saved architecture and load its weights strictly. Refuses a missing or
    unreadable file, keys that do not match the architecture, absent weights, a task whose output size
    is not the heads', and never-trained banks."""
    path = Path(path)
    if not path.is_file():
        raise ProbeCheckpointError(
            f"probe checkpoint {path} does not exist: refusing to evaluate an untrained probe"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, empty, not a torch file, or objects beyond plain types
        raise ProbeCheckpointError(
            f"{path}: unreadable probe checkpoint ({type(err).__name__}; empty, truncated or not a "
            "probe file written by save_probe)"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _PROBE_FORMAT:
        raise ProbeCheckpointError(f"{path} is not an echojepa probe checkpoint")
    if ckpt.get("version") != _PROBE_VERSION:
        raise ProbeCheckpointError(
            f"{path}: probe checkpoint version {ckpt.get('version')!r}, this code reads {_PROBE_VERSION} "
            "(probes are now built at one width for every backbone): re-train it"
        )
    state = ckpt.get("state_dict")
    if not state:
        raise ProbeCheckpointError(f"{path} holds no probe weights: refusing to evaluate an untrained probe")
    try:
        arch = ckpt["arch"]
        bank = ProbeBank(arch["kind"], arch["head_kwargs"], [HeadSpec(**s) for s in arch["specs"]])
        task = ProbeTask(**ckpt["task"])
    except (KeyError, TypeError, ValueError) as err:
        raise ProbeCheckpointError(f"{path}: invalid probe architecture or task ({err})") from None
    try:
        load_state_dict_strict(bank, state, what=f"probe checkpoint {path}")
    except CheckpointMismatchError as err:  # names the file and the keys: bad input, not a bug
        raise ProbeCheckpointError("; ".join(line.strip() for line in str(err).splitlines())) from None
    if int(bank.trained_steps) == 0:
        raise ProbeCheckpointError(f"{path} holds a probe bank that was never trained")
    if task.out_dim != bank.out_dim:
        raise ProbeCheckpointError(
            f"{path}: its task needs {task.out_dim} outputs but its heads give {bank.out_dim}"
        )
    bank.task = task
    bank.eval()
    return bank, task, dict(ckpt.get("meta") or {})


# What a saved probe's meta must hold to be reused for evaluation (``check_probe_fits``).
REUSE_META = ("backbone_identity", "task", "label", "seed", "train_dataset", "chosen_head", "chosen")


def probe_facts(bank: ProbeBank, task: ProbeTask, meta: Mapping[str, Any]) -> dict[str, Any]:
    """What ``check_probe_fits`` compares: the saved meta plus the facts the weights and task carry."""
    return {
        **meta,
        "task_kind": task.kind,
        "out_dim": bank.out_dim,
        "class_names": task.class_names,
        "probe_kind": bank.kind,
        "clips_per_view": bank.head_kwargs.get("clips_per_view"),
    }


def check_probe_fits(
    path: str | Path,
    bank: ProbeBank,
    task: ProbeTask,
    meta: Mapping[str, Any],
    expect: Mapping[str, Any],
) -> None:
    """Refuse a loaded probe that was not trained for this evaluation, listing every mismatch.

    ``expect`` maps a key of ``probe_facts`` (backbone_identity, task, label, task_kind, out_dim,
    class_names, probe_kind, views, ...) to the value this run needs, or to a set of allowed values.
    A probe saved without the meta that reuse needs (``REUSE_META``) is refused too."""
    missing = [k for k in REUSE_META if k not in meta]
    if missing:
        raise ProbeCheckpointError(
            f"{path}: saved without {', '.join(missing)} in its meta, so it cannot be checked against "
            "this evaluation: re-train it"
        )
    facts = probe_facts(bank, task, meta)
    wrong = []
    for key, want in expect.items():
        have = facts.get(key)
        if have in want if isinstance(want, set | frozenset) else have == want:
            continue
        if key == "backbone_identity":
            wrong.append(f"trained on another backbone ({meta.get('backbone')})")
        else:
            shown = sorted(want) if isinstance(want, set | frozenset) else want
            wrong.append(f"{key} {have!r} (this run needs {shown!r})")
    head = int(meta["chosen_head"])
    if not 0 <= head < len(bank):
        wrong.append(f"chosen_head {head} outside its bank of {len(bank)}")
    if wrong:
        raise ProbeCheckpointError(f"{path}: refusing to evaluate this saved probe: {'; '.join(wrong)}")


# ---------------------------------------------------------------------------------------------------------
# Benchmark


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


if __name__ == "__main__":
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
    a = parser.parse_args()
    benchmark_heads(
        a.num_heads, a.batch_size, a.num_tokens, a.embed_dim, a.depth, a.attn_heads, a.steps, a.kind,
        a.device, a.heads_per_pass,
    )  # fmt: skip
