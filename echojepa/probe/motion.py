"""Motion tokens for an attentive probe: how far each place in the clip moves, the same function for
every backbone.

Why: an attentive probe ends in a cross-attention pooling, a weighted mean of its tokens, and EF is the
amplitude of an oscillation whose phase at a clip's first frame is arbitrary: a quadratic function of
the token time series that a weighted mean cannot form, and that a shallow probe must otherwise learn
to build in its self-attention blocks from a few hundred steps. The non-learned pixel floor carries a
rectified motion term in every token (mean |x(t+1) - x(t)| per tubelet), an encoder's tokens need not,
so without this the probe reads EF from hand features more easily than from any encoder. On the science
world a closed-form readout of a random-init encoder's per-time-step means scored no better than the
train mean, its per-position std over time 6.16 val MAE (scripts/ef_readout.py).

What: on the PROJECTED tokens (probe width W, before the position code), for each segment s and grid
position (row, column) of the probe grid (T', h, w), the std over the T' time steps (population std):
``S * h * w`` tokens [B, S*h*w, W], appended after the content tokens. With the position code they get
the code of their (row, column) and time ``-(s + 1)``: no content token sits at a negative time, so the
probe can tell them apart without a trainable parameter. A padded segment's motion tokens are padded.
Tokens that do not tile the clip (no grid) are read as one segment of N time steps: one motion token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor

from echojepa.probe.position import cell_positions, code_at


def motion_tokens(content: Tensor, grid: Sequence[int] | None) -> Tensor:
    """content [B, S*T'*h*w, W] (whole grids, t-major) -> [B, S*h*w, W]: each position's std over time."""
    b, n, width = content.shape
    t, h, w = (n, 1, 1) if grid is None else (int(g) for g in grid)
    if n % (t * h * w):
        raise ValueError(f"{n} tokens are not whole clips of the probe grid {(t, h, w)}")
    x = rearrange(content.float(), "b (s t p) d -> b s t p d", t=t, p=h * w)
    return rearrange(x.std(dim=2, unbiased=False), "b s p d -> b (s p) d").to(content.dtype)


def motion_code(
    num_segments: int, grid: Sequence[int] | None, width: int, periods: Sequence[float]
) -> Tensor:
    """[S*h*w, width]: the space-time code of the motion tokens, at (time -(s + 1), row, column)."""
    _, h, w = (1, 1, 1) if grid is None else (int(g) for g in grid)
    pos = cell_positions((1, h, w), num_segments)  # [S*h*w, 3], time s + 0.5
    pos[:, 0] = -(pos[:, 0] + 0.5)  # segment s -> time -(s + 1)
    return code_at(pos, width, periods)


def append_motion_tokens(
    x: Tensor,
    content: Tensor,
    key_padding_mask: Tensor | None,
    grid: Sequence[int] | None,
    position: str,
    periods: Sequence[float],
) -> tuple[Tensor, Tensor | None]:
    """Probe tokens x [B, L, W] (content plus position code) and the content alone -> [B, L + M, W] with
    the M motion tokens after them, and the padding mask grown to match."""
    b, n, width = content.shape
    per_clip = n if grid is None else math.prod(int(g) for g in grid)
    segments = n // per_clip
    motion = motion_tokens(content, grid)  # [B, S*h*w, W]
    if position != "none":
        motion = motion + motion_code(segments, grid, width, periods).to(device=x.device, dtype=x.dtype)
    out = torch.cat([x, motion], dim=1)
    if key_padding_mask is None:
        return out, None
    per_segment = key_padding_mask.reshape(b, segments, per_clip).all(dim=2)  # [B, S] a padded clip
    grown = per_segment.repeat_interleave(motion.shape[1] // segments, dim=1)  # [B, S*h*w]
    return out, torch.cat([key_padding_mask, grown], dim=1)
