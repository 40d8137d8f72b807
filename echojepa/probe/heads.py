"""Probe heads on frozen tokens.

Heads
    ``AttentiveProbe`` (V-JEPA 2 layout: one learned query, ``depth - 1`` self-attention blocks over the
    tokens, one cross-attention block without output projection, then ``Linear(D, out)``; the pooler is
    ``echojepa.probe.pooler``), ``LinearProbe`` and ``MLPProbe`` (mean-pool over non-padded tokens +
    LayerNorm + Linear / 2-layer MLP). Parameter names follow V-JEPA 2's attentive classifier
    (``pooler.query_tokens``, ``pooler.blocks.i``, ``pooler.cross_attention_block``, ``linear``). The
    multi-view heads build on ``AttentiveProbe`` in ``echojepa.probe.multiview``.

K heads in one pass
    Every head computes through ``stacked_forward(params, ...)``, where each parameter carries a leading
    head axis K (``echojepa.probe.stacked``). A single head runs it with K = 1; ``ProbeBank``
    (``echojepa.probe.bank``) stacks the parameters of its K heads and runs it once.

One probe for every backbone
    Heads built with ``in_dim`` take the backbone's raw tokens [.., in_dim] and first map them to the probe
    width ``embed_dim`` with a fixed ``TokenProjection`` (buffers fit on training tokens, see
    ``echojepa.probe.project``; ``ProbeBank.set_projection``), so the trainable parameters depend on the
    probe width only, never on the backbone. Attentive heads with ``position="sincos"`` then add the fixed
    space-time code of ``echojepa.probe.position`` over the backbone's ``token_grid``: with self-attention
    blocks (depth >= 2) the probe can relate tokens across time, and every block knows where each token is.
    With ``space_grid`` the tokens are first averaged over space to that coarser grid
    (``echojepa.probe.space_pool``): a cheaper probe for temporal tasks that still keeps time.
    With ``motion`` the attentive probe also attends over motion tokens (``echojepa.probe.motion``): per
    segment and grid position, the projected tokens' std over time, a fixed function that hands the
    probe how far each place moves (EF is an oscillation's amplitude at an arbitrary phase).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from echojepa.probe.motion import append_motion_tokens
from echojepa.probe.pooler import AttentivePooler
from echojepa.probe.position import POSITION_KINDS, spacetime_code
from echojepa.probe.project import TokenProjection
from echojepa.probe.space_pool import pool_padding, pool_space, probe_grid
from echojepa.probe.stacked import Params, stacked_layer_norm, stacked_linear, stacked_mlp, sub_params


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
        space_grid: Sequence[int] | None = None,
        motion: bool = False,
    ) -> None:
        token_grid = None if token_grid is None else [int(g) for g in token_grid]
        space_grid = None if space_grid is None else [int(g) for g in space_grid]
        super().__init__(
            embed_dim=embed_dim, out_dim=out_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
            num_queries=num_queries, norm_eps=norm_eps, init_std=init_std, in_dim=in_dim,
            token_grid=token_grid, position=position, position_periods=[float(p) for p in position_periods],
            space_grid=space_grid, motion=bool(motion),
        )  # fmt: skip
        if depth < 1 or num_queries < 1:
            raise ValueError(f"depth ({depth}) and num_queries ({num_queries}) must be >= 1")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if position not in POSITION_KINDS:
            raise ValueError(f"position must be one of {POSITION_KINDS}, got {position!r}")
        self.token_grid, self.position = token_grid, position
        self.space_grid = space_grid
        self.motion = bool(motion)
        # the grid the probe attends over: the backbone's, or its spatial pooling (space_pool.py)
        self.probe_grid = probe_grid(token_grid, space_grid)
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

    def embed_tokens(
        self, tokens: Tensor, key_padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Backbone tokens [B, L, in_dim] -> probe tokens [B, L (+ M), D] and their padding mask: the fixed
        projection, plus the space-time code of L tokens (as many whole token grids as L holds: the
        segments in order); with ``motion``, then the M motion tokens (echojepa.probe.motion)."""
        x = self.project(tokens)
        content = x
        if self.position != "none":
            code = spacetime_code(x.shape[-2], self.probe_grid, x.shape[-1], self.position_periods)
            x = x + code.to(device=x.device, dtype=x.dtype)
        if not self.motion:
            return x, key_padding_mask
        return append_motion_tokens(
            x, content, key_padding_mask, self.probe_grid, self.position, self.position_periods
        )

    def pool(self, tokens: Tensor, key_padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """[B, L, in_dim] -> [B, L', in_dim]: the spatial pooling to ``space_grid`` (identity without one)."""
        if self.space_grid is None or self.token_grid is None:
            return tokens, key_padding_mask
        if key_padding_mask is not None:
            key_padding_mask = pool_padding(key_padding_mask, self.token_grid, self.space_grid)
        return pool_space(tokens, self.token_grid, self.space_grid), key_padding_mask

    def stacked_forward(self, params, tokens, key_padding_mask=None, presence=None, generator=None):
        _single_view_only(self.kind, presence)
        tokens, key_padding_mask = self.pool(*_flatten_segments(tokens, key_padding_mask))
        x, key_padding_mask = self.embed_tokens(tokens, key_padding_mask)
        return self.pooled_forward(params, x, key_padding_mask, shared=True)

    def pooled_forward(
        self, params: Params, x: Tensor, key_padding_mask: Tensor | None, shared: bool
    ) -> Tensor:
        """x [B, N, D] (shared by the heads) or [K, B, N, D] (per head) -> [K, B, out_dim]."""
        b, n = x.shape[-3], x.shape[-2]
        _check_padding(key_padding_mask, b, n)
        if key_padding_mask is not None:
            # padded tokens become exact zeros: whatever they held (even NaN) cannot leak through 0 * x
            x = x.masked_fill(key_padding_mask.unsqueeze(-1), 0.0)
        q = self.pooler.stacked_forward(
            sub_params(params, "pooler"), x, key_padding_mask, shared
        )  # [K, B, Q, D]
        return stacked_linear(q.mean(dim=2), sub_params(params, "linear"))  # [K, B, out]

    def attention_weights(self, tokens: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """Cross-attention weights of this head's query over the tokens, per attention head (averaged
        over queries when there are several): tokens [B, N, D] or [B, S, N, D] -> [B, heads, N] (S*N
        for segments, in token order; the pooled tokens with ``space_grid``). Padded tokens get weight 0;
        each row sums to 1, less what went to the motion tokens with ``motion`` (not returned: they have
        no place in the clip)."""
        tokens, key_padding_mask = self.pool(*_flatten_segments(tokens, key_padding_mask))
        _check_padding(key_padding_mask, tokens.shape[0], tokens.shape[1])
        num_content = tokens.shape[1]
        tokens, key_padding_mask = self.embed_tokens(tokens, key_padding_mask)
        if key_padding_mask is not None:
            tokens = tokens.masked_fill(key_padding_mask.unsqueeze(-1), 0.0)
        params = {n: p.unsqueeze(0) for n, p in self.named_parameters()}
        weights = self.pooler.stacked_attention(sub_params(params, "pooler"), tokens, key_padding_mask, True)
        return weights[0].mean(dim=1)[..., :num_content]  # [B, heads, N]


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
        pooled = stacked_layer_norm(
            _masked_mean(self.project(tokens), key_padding_mask),
            sub_params(params, "norm"),
            True,
            self.norm.eps,
        )
        return stacked_linear(pooled, sub_params(params, "linear"))  # [K, B, out]


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
        pooled = stacked_layer_norm(
            _masked_mean(self.project(tokens), key_padding_mask),
            sub_params(params, "norm"),
            True,
            self.norm.eps,
        )
        return stacked_mlp(pooled, params)  # [K, B, out]
