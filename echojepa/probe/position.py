"""A fixed space-time position code for probe tokens, the same function for every backbone.

Frozen tokens reach the probe as a set: attention is blind to where a token sits unless told. The code
tells it, without adding a trainable parameter (which would make the head's size depend on the token
count): each token gets a sin-cos code of its position in the clip, added to the projected token.

Positions are in clip units, so the same place in the video gets the same code whatever the backbone's
patching: token (t, h, w) of a (T', H', W') grid in segment s sits at time ``s + (t + 0.5) / T'``, row
``(h + 0.5) / H'`` and column ``(w + 0.5) / W'``. A token sequence of several segments (LVEF's 2 clips,
all-clips groups) is S consecutive grids. A backbone whose tokens do not tile the clip (a pooled
embedding, a class token first, PanEcho's mixed frames) is placed on a (N, 1, 1) grid: token order read
as time within the clip, which is what such tokens at best are.

Each of the three axes gets ``2 * (width // 6)`` channels: sin and cos at ``width // 6`` frequencies
spaced geometrically so that periods run from ``periods[0]`` (longest: no ambiguity over that many
clips) down to ``periods[1]`` (shortest: resolves that fraction of a clip). Leftover channels are 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

POSITION_KINDS = ("sincos", "none")


def cell_positions(grid: Sequence[int], segments: int) -> Tensor:
    """[segments * T' * H' * W', 3] (time, row, column) in clip units, tokens in row-major grid order."""
    t, h, w = (int(g) for g in grid)
    if min(t, h, w) < 1 or segments < 1:
        raise ValueError(f"token grid {tuple(grid)} and segments {segments} must be >= 1")
    s_idx, t_idx, h_idx, w_idx = torch.meshgrid(
        torch.arange(segments), torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij"
    )
    time = s_idx + (t_idx + 0.5) / t
    return torch.stack([time, (h_idx + 0.5) / h, (w_idx + 0.5) / w], dim=-1).reshape(-1, 3).double()


def code_at(pos: Tensor, width: int, periods: Sequence[float]) -> Tensor:
    """[L, width] float32: the code of L (time, row, column) positions in clip units ([L, 3])."""
    longest, shortest = (float(p) for p in periods)
    if not longest > shortest > 0:
        raise ValueError(f"position periods must be longest > shortest > 0, got {tuple(periods)}")
    pos = pos.double()
    per_axis = width // 6
    out = torch.zeros(pos.shape[0], width, dtype=torch.float64)
    if per_axis == 0:
        return out.float()
    ratio = torch.arange(per_axis, dtype=torch.float64) / max(per_axis - 1, 1)
    omega = 2 * math.pi / (longest * (shortest / longest) ** ratio)  # [F] radians per clip unit
    for axis in range(3):
        angle = pos[:, axis : axis + 1] * omega[None, :]  # [L, F]
        start = axis * 2 * per_axis
        out[:, start : start + per_axis] = angle.sin()
        out[:, start + per_axis : start + 2 * per_axis] = angle.cos()
    return out.float()


@functools.lru_cache(maxsize=64)
def _code(grid: tuple[int, int, int], segments: int, width: int, periods: tuple[float, float]) -> Tensor:
    return code_at(cell_positions(grid, segments), width, periods)


def spacetime_code(
    num_tokens: int, grid: Sequence[int] | None, width: int, periods: Sequence[float]
) -> Tensor:
    """[num_tokens, width]: the code of a sequence of whole ``grid``s (one per segment); ``grid`` None:
    (num_tokens, 1, 1). Refuses a sequence that is not a whole number of grids."""
    if grid is None:
        grid = (int(num_tokens), 1, 1)
    grid = tuple(int(g) for g in grid)
    per_clip = math.prod(grid)
    if num_tokens % per_clip:
        raise ValueError(
            f"{num_tokens} tokens are not whole clips of the token grid {grid} ({per_clip} tokens per clip)"
        )
    return _code(grid, num_tokens // per_clip, int(width), (float(periods[0]), float(periods[1])))
