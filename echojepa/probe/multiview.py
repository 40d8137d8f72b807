"""Multi-view probes: one prediction per study from V views x C clips of frozen tokens.

``MultiViewProbe`` (early fusion, factorized stream embeddings): every token of slot s gets
``view_embed[s // C] + clip_embed[s % C]``; all slots are concatenated into one sequence for an attentive
probe. Missing slots become a key-padding mask in both self- and cross-attention (their tokens are zeroed
first, so their content cannot matter). ``LateFusionProbe`` (the ablation): one shared attentive probe per
slot, predictions (logits for classification) averaged with presence weights.

Both are ``StackableHead``s, so ``ProbeBank("multiview" | "late_fusion", ...)`` trains K of them in one
pass. Loaders give ``tokens [B, V*C, N, D]`` and ``presence [B, V*C]`` (True = slot present). Built with
``in_dim``, both first map the backbone's tokens to the probe width with the fixed projection; with
``position="sincos"`` every slot's tokens get the fixed space-time code of clip c = s % C of its view (the
C clips of a view are consecutive in time), see ``echojepa.probe.position``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from echojepa.probe.heads import AttentiveProbe, StackableHead
from echojepa.probe.position import POSITION_KINDS, spacetime_code
from echojepa.probe.space_pool import pool_space, probe_grid
from echojepa.probe.stacked import Params, sub_params


def view_dropout(
    presence: Tensor, num_views: int, clips_per_view: int, p: float, generator: torch.Generator | None = None
) -> Tensor:
    """Drop each present view (all its clips) with probability p, keeping at least one present view.
    presence [B, V*C] bool -> [B, V*C] bool."""
    b = presence.shape[0]
    views = presence.view(b, num_views, clips_per_view).any(dim=-1)  # [B, V]
    draw = torch.rand(b, num_views, generator=generator).to(presence.device)
    keep = views & (draw >= p)
    # samples that lost every view get back one present view, picked uniformly at random
    lost = ~keep.any(dim=-1)  # [B]
    pick = torch.rand(b, num_views, generator=generator).to(presence.device).masked_fill(~views, -1.0)
    restore = torch.zeros_like(keep).scatter_(1, pick.argmax(dim=-1, keepdim=True), True) & lost[:, None]
    keep = keep | restore
    return presence & keep.repeat_interleave(clips_per_view, dim=1)


def _check_slots(
    tokens: Tensor, presence: Tensor | None, slots: int, key_padding_mask: Tensor | None
) -> Tensor:
    if key_padding_mask is not None:
        raise ValueError("multi-view probes take `presence` [B, V*C] for missing slots, not key_padding_mask")
    if tokens.ndim != 4 or tokens.shape[1] != slots:
        raise ValueError(f"expected tokens [B, V*C={slots}, N, D], got shape {tuple(tokens.shape)}")
    if presence is None:
        return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    if presence.dtype != torch.bool or tuple(presence.shape) != tuple(tokens.shape[:2]):
        raise ValueError(
            f"presence must be bool [B, V*C] = {tuple(tokens.shape[:2])}, got {presence.dtype} "
            f"{tuple(presence.shape)}"
        )
    return presence


def _require_one_present(presence: Tensor) -> None:
    if bool((~presence.any(dim=1)).any()):
        raise ValueError("a study in the batch has no present view: nothing to predict from")


class _SlotProbe(StackableHead):
    """What both multi-view probes share: V views x C clip slots, view dropout, an attentive probe."""

    def __init__(
        self,
        embed_dim: int,
        out_dim: int,
        num_views: int,
        clips_per_view: int,
        depth: int = 4,
        num_heads: int = 16,
        view_dropout: float = 0.10,
        mlp_ratio: float = 4.0,
        num_queries: int = 1,
        norm_eps: float = 1e-6,
        init_std: float = 0.02,
        in_dim: int | None = None,
        token_grid: Sequence[int] | None = None,
        position: str = "none",
        position_periods: Sequence[float] = (8.0, 1.0 / 32),
        space_grid: Sequence[int] | None = None,
    ) -> None:
        token_grid = None if token_grid is None else [int(g) for g in token_grid]
        space_grid = None if space_grid is None else [int(g) for g in space_grid]
        super().__init__(
            embed_dim=embed_dim, out_dim=out_dim, num_views=num_views, clips_per_view=clips_per_view,
            depth=depth, num_heads=num_heads, view_dropout=view_dropout, mlp_ratio=mlp_ratio,
            num_queries=num_queries, norm_eps=norm_eps, init_std=init_std, in_dim=in_dim,
            token_grid=token_grid, position=position, position_periods=[float(p) for p in position_periods],
            space_grid=space_grid,
        )  # fmt: skip
        if not 0.0 <= view_dropout < 1.0:
            raise ValueError(f"view_dropout must lie in [0, 1), got {view_dropout}")
        if position not in POSITION_KINDS:
            raise ValueError(f"position must be one of {POSITION_KINDS}, got {position!r}")
        self.num_views, self.clips_per_view, self.p_drop = num_views, clips_per_view, view_dropout
        self.token_grid, self.position = token_grid, position
        self.space_grid = space_grid
        # the grid each slot's clip is attended over: the backbone's, or its spatial pooling (space_pool.py)
        self.probe_grid = probe_grid(token_grid, space_grid)
        self.position_periods = tuple(float(p) for p in position_periods)
        self._init_slots(embed_dim, init_std)
        self.probe = AttentiveProbe(
            embed_dim, out_dim, depth, num_heads, mlp_ratio, num_queries, norm_eps, init_std
        )

    def _init_slots(self, embed_dim: int, init_std: float) -> None:
        """Parameters registered before the probe (early fusion: the stream embeddings)."""

    def embed_slots(self, tokens: Tensor) -> Tensor:
        """Backbone tokens [B, V*C, N, in_dim] -> [B, V*C, N', D]: the spatial pooling to ``space_grid``
        (N' = N without one), the fixed projection, plus per slot the space-time code of its clip (clip
        s % C of its view)."""
        if self.space_grid is not None and self.token_grid is not None:
            tokens = pool_space(tokens, self.token_grid, self.space_grid)  # [B, V*C, N', in_dim]
        x = self.project(tokens)
        if self.position == "none":
            return x
        c, n, d = self.clips_per_view, x.shape[2], x.shape[3]
        code = spacetime_code(c * n, self.probe_grid, d, self.position_periods).view(c, n, d)
        slot = torch.arange(x.shape[1]) % c
        return x + code[slot].to(device=x.device, dtype=x.dtype)


class MultiViewProbe(_SlotProbe):
    kind = "multiview"

    def _init_slots(self, embed_dim: int, init_std: float) -> None:
        self.view_embed = nn.Embedding(self.num_views, embed_dim)
        self.clip_embed = nn.Embedding(self.clips_per_view, embed_dim)
        trunc_normal_(self.view_embed.weight, std=init_std)
        trunc_normal_(self.clip_embed.weight, std=init_std)

    def stacked_forward(
        self,
        params: Params,
        tokens: Tensor,
        key_padding_mask: Tensor | None = None,
        presence: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """tokens [B, V*C, N, D], presence [B, V*C] -> [K, B, out_dim]."""
        v, c = self.num_views, self.clips_per_view
        presence = _check_slots(tokens, presence, v * c, key_padding_mask)
        if self.training and self.p_drop > 0:
            presence = view_dropout(presence, v, c, self.p_drop, generator)
        _require_one_present(presence)
        tokens = self.embed_slots(tokens)
        b, s, n, d = tokens.shape
        slot = torch.arange(s, device=tokens.device)
        stream = (
            params["view_embed.weight"][:, slot // c] + params["clip_embed.weight"][:, slot % c]
        )  # [K, S, D]
        x = tokens.masked_fill(~presence[:, :, None, None], 0.0)  # [B, S, N, D]
        x = (x.unsqueeze(0) + stream[:, None, :, None, :]).flatten(2, 3)  # [K, B, S*N, D]
        pad = (~presence)[:, :, None].expand(b, s, n).reshape(b, s * n)  # [B, S*N]
        return self.probe.pooled_forward(sub_params(params, "probe"), x, pad, shared=False)


class LateFusionProbe(_SlotProbe):
    kind = "late_fusion"

    def stacked_forward(
        self,
        params: Params,
        tokens: Tensor,
        key_padding_mask: Tensor | None = None,
        presence: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """tokens [B, V*C, N, D], presence [B, V*C] -> presence-weighted mean of slot outputs [K, B, out]."""
        v, c = self.num_views, self.clips_per_view
        presence = _check_slots(tokens, presence, v * c, key_padding_mask)
        if self.training and self.p_drop > 0:
            presence = view_dropout(presence, v, c, self.p_drop, generator)
        _require_one_present(presence)
        tokens = self.embed_slots(tokens)
        b, s, n, d = tokens.shape
        x = tokens.masked_fill(~presence[:, :, None, None], 0.0).reshape(b * s, n, d)  # slots as items
        out = self.probe.pooled_forward(sub_params(params, "probe"), x, None, shared=True)  # [K, B*S, out]
        out = out.view(out.shape[0], b, s, -1)  # [K, B, S, out]
        w = presence.to(out.dtype)  # [B, S]
        return (out * w[None, :, :, None]).sum(dim=2) / w.sum(dim=1)[None, :, None]
