"""3D rotary position embedding (RoPE) over a (time, height, width) token grid.

Each attention head's channels are split into three chunks of ``d = 2 * ((head_dim // 3) // 2)``
channels, one per grid axis; the ``head_dim - 3 * d`` leftover channels are passed through unrotated.
Within a chunk, channel pair ``(2j, 2j + 1)`` is rotated by ``pos * 10000 ** (-2j / d)`` with ``pos`` the
token's integer grid index along that axis.

The released V-JEPA 2 / EchoJEPA weights were trained with a quirk: sin/cos were expanded with
``.repeat`` (``[f0..fk, f0..fk]``) while the rotation pairs adjacent channels, so the two channels of a
pair see different frequencies. ``repeat_layout=True`` reproduces that exactly (needed to use released
weights); ``False`` is the textbook interleaved layout (``[f0, f0, f1, f1, ...]``).

The tables are built once per forward pass and shared by every block, since the positions do not change
between blocks.
"""

from __future__ import annotations

import torch
from torch import Tensor

ROPE_BASE = 10000.0


def rope_axis_dim(head_dim: int) -> int:
    """Channels rotated per grid axis (t, h, w) for a head of ``head_dim`` channels."""
    d = 2 * ((head_dim // 3) // 2)
    if d == 0:
        raise ValueError(f"head_dim={head_dim} is too small for 3D RoPE (needs at least 6 channels)")
    return d


def grid_positions(token_idx: Tensor, grid_size: tuple[int, int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """Split t-major flat token indices (``t*H*W + h*W + w``) into integer (t, h, w) grid positions."""
    _, h, w = grid_size
    t_pos = token_idx // (h * w)
    rem = token_idx - t_pos * (h * w)
    h_pos = rem // w
    w_pos = rem - h_pos * w
    return t_pos, h_pos, w_pos


def _axis_angles(pos: Tensor, dim: int, repeat_layout: bool, base: float) -> Tensor:
    """Rotation angle of every channel of one axis chunk: ``[..., N]`` positions -> ``[..., N, dim]``."""
    half = dim // 2
    inv_freq = base ** (-torch.arange(half, dtype=torch.float32, device=pos.device) / half)  # [dim/2]
    angles = pos.to(torch.float32).unsqueeze(-1) * inv_freq  # [..., N, dim/2]
    if repeat_layout:
        return torch.cat([angles, angles], dim=-1)  # [..., N, dim]: f0..fk, f0..fk
    return angles.repeat_interleave(2, dim=-1)  # [..., N, dim]: f0, f0, f1, f1, ...


def rope_tables(
    token_idx: Tensor,
    grid_size: tuple[int, int, int],
    head_dim: int,
    *,
    repeat_layout: bool = False,
    base: float = ROPE_BASE,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Cos/sin tables for the rotated channels of every token.

    token_idx: ``[N]`` or ``[B, N]`` flat t-major indices. Returns ``(cos, sin)``, each
    ``[1 or B, 1, N, 3*d]`` so they broadcast over heads.
    """
    d = rope_axis_dim(head_dim)
    if token_idx.ndim == 1:
        token_idx = token_idx.unsqueeze(0)
    angles = torch.cat(
        [_axis_angles(p, d, repeat_layout, base) for p in grid_positions(token_idx, grid_size)], dim=-1
    )  # [B, N, 3d]
    angles = angles.unsqueeze(1)  # [B, 1, N, 3d]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate adjacent channel pairs of ``x`` [B, heads, N, head_dim]; channels past ``cos``'s width pass."""
    r = cos.shape[-1]
    xr = x[..., :r]  # [B, heads, N, 3d]
    pairs = xr.unflatten(-1, (-1, 2))  # [B, heads, N, 3d/2, 2]
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)  # (x0, x1) -> (-x1, x0)
    out = xr * cos.to(x.dtype) + rotated * sin.to(x.dtype)
    if r == x.shape[-1]:
        return out
    return torch.cat([out, x[..., r:]], dim=-1)
