"""Spatial pooling of frozen tokens before an attentive probe: a cheaper probe that keeps time.

An attentive probe's cost grows with the token count (attention with its square). Temporal tasks (LVEF,
RVSP) read how the heart changes over time, so a probe can average each time step's tokens over space
down to a coarse ``space_grid`` (rows, columns) and attend over far fewer tokens: a (T', H', W') grid
becomes (T', h, w). The pooling is a fixed mean, the same function for every backbone; it runs before
the fixed token projection, which is affine, so pooling then projecting equals projecting then pooling.

Each axis pools to ``min(target, size)`` cells and must divide evenly: a grid already coarser than the
target passes through unchanged, and so do tokens that do not tile the clip (no token grid: they are
read as time already).
"""

from __future__ import annotations

from collections.abc import Sequence

from einops import reduce
from torch import Tensor


def pooled_grid(grid: Sequence[int], space_grid: Sequence[int]) -> list[int]:
    """The (T', h, w) grid that (T', H', W') tokens pool to; refuses a target that does not divide."""
    t, h, w = (int(g) for g in grid)
    th, tw = (int(g) for g in space_grid)
    if th < 1 or tw < 1:
        raise ValueError(f"space_grid must be two sizes >= 1, got {list(space_grid)}")
    out_h, out_w = min(th, h), min(tw, w)
    if h % out_h or w % out_w:
        raise ValueError(f"space_grid {[th, tw]} does not divide the token grid {[t, h, w]} evenly")
    return [t, out_h, out_w]


def probe_grid(token_grid: Sequence[int] | None, space_grid: Sequence[int] | None) -> list[int] | None:
    """The grid an attentive probe attends over: the backbone's ``token_grid``, pooled to ``space_grid``
    when one is set. Tokens that do not tile the clip (no grid) are read as time: nothing to pool."""
    if token_grid is None:
        return None
    return [int(g) for g in token_grid] if space_grid is None else pooled_grid(token_grid, space_grid)


def pool_space(tokens: Tensor, grid: Sequence[int], space_grid: Sequence[int]) -> Tensor:
    """tokens [..., S*T'*H'*W', D] (S whole clip grids in row-major order) -> [..., S*T'*h*w, D]."""
    t, h, w = (int(g) for g in grid)
    _, out_h, out_w = pooled_grid(grid, space_grid)
    sizes = dict(t=t, h=out_h, a=h // out_h, w=out_w, b=w // out_w)
    return reduce(tokens, "... (s t h a w b) d -> ... (s t h w) d", "mean", **sizes)


def pool_padding(mask: Tensor, grid: Sequence[int], space_grid: Sequence[int]) -> Tensor:
    """key_padding_mask [B, S*T'*H'*W'] (True = padding) -> [B, S*T'*h*w]. Padding is whole clips, so a
    pooled cell is padding exactly when all of its tokens are; a cell with some padded tokens is refused."""
    t, h, w = (int(g) for g in grid)
    _, out_h, out_w = pooled_grid(grid, space_grid)
    sizes = dict(t=t, h=out_h, a=h // out_h, w=out_w, b=w // out_w)
    pattern = "B (s t h a w b) -> B (s t h w)"
    every = reduce(mask.float(), pattern, "min", **sizes) > 0
    some = reduce(mask.float(), pattern, "max", **sizes) > 0
    if bool((every != some).any()):
        raise ValueError("key_padding_mask pads part of a pooled cell: padding must cover whole clips")
    return every
