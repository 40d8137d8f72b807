"""Token masks for video pretraining: 3D multi-block (JEPA) and tube (MAE).

All indices are flat and t-major over a (T, H, W) token grid: ``index = t*H*W + h*W + w``, sorted
ascending within each row.

Determinism and resumption: the random draws of call number ``step`` come from a generator seeded by
``(seed, step)`` only, so ``state_dict()`` is just ``{"seed", "step"}`` and a resumed run (or a data
worker told the step) draws exactly the masks of an uninterrupted one. Under data parallelism each rank
sets ``stream`` to its rank: rank r > 0 draws from ``(seed, step, r)``, so devices do not repeat one
another's masks (rank 0, and any single-device run, keeps ``(seed, step)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from echojepa.confkeys import Dispatch, by_field, parse, register

# A sample whose context comes out empty is redrawn; past this many tries the config cannot work.
MAX_REDRAWS = 100


@dataclass(frozen=True)
class MaskGroupConfig:
    """One mask group: ``num_blocks`` blocks of a shared size, each covering ``spatial_scale`` of the
    frame area and ``temporal_scale`` of the frames, with height/width ratio in ``aspect_ratio``."""

    spatial_scale: float
    temporal_scale: float
    aspect_ratio: tuple[float, float]
    num_blocks: int

    def __post_init__(self) -> None:
        lo, hi = (float(a) for a in self.aspect_ratio)  # YAML gives a list; keep the config hashable
        object.__setattr__(self, "aspect_ratio", (lo, hi))
        if not (0 < self.spatial_scale <= 1 and 0 < self.temporal_scale <= 1):
            raise ValueError(f"mask scales must lie in (0, 1], got {self}")
        if not 0 < lo <= hi or self.num_blocks < 1:
            raise ValueError(f"need 0 < aspect_ratio[0] <= aspect_ratio[1] and num_blocks >= 1, got {self}")


def _check_grid(grid_size: Sequence[int]) -> tuple[int, int, int]:
    if len(grid_size) != 3 or any(int(g) < 1 for g in grid_size):
        raise ValueError(f"grid_size must be three positive ints (T, H, W), got {grid_size}")
    t, h, w = (int(g) for g in grid_size)
    return t, h, w


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """The tokens a mask names: x [B, N, D], index [B, K] -> [B, K, D]."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class _SeededByStep:
    """Shared seeding/resume logic: one fresh generator per call, derived from (seed, step)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.step = 0
        self.stream = 0  # the data-parallel rank; not saved: a resumed run gets it from its own rank

    def _next_rng(self) -> np.random.Generator:
        key = [self.seed, self.step] if self.stream == 0 else [self.seed, self.step, self.stream]
        rng = np.random.default_rng(key)
        self.step += 1
        return rng

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "step": self.step}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        missing = {"seed", "step"} - set(state)
        if missing:
            raise ValueError(f"mask generator state lacks {sorted(missing)}")
        self.seed, self.step = int(state["seed"]), int(state["step"])


class MultiBlockMaskGenerator(_SeededByStep):
    """3D multi-block masks; ``__call__(B)`` returns one ``(context[B, Nc], target[B, Nt])`` per group.

    Per group, the block size (t, h, w) is drawn once per batch and block positions per sample; the
    target is the union of the blocks and the context its complement. A sample whose context would be
    empty is redrawn. Rows are truncated to the batch minimum (keeping the lowest indices) so they stack.
    """

    def __init__(self, grid_size: Sequence[int], groups: Sequence[MaskGroupConfig], seed: int = 0) -> None:
        super().__init__(seed)
        self.grid_size = _check_grid(grid_size)
        if not groups:
            raise ValueError("MultiBlockMaskGenerator needs at least one mask group")
        self.groups = list(groups)

    def _block_size(self, rng: np.random.Generator, group: MaskGroupConfig) -> tuple[int, int, int]:
        t_grid, h_grid, w_grid = self.grid_size
        t = max(1, int(t_grid * group.temporal_scale))
        area = int(h_grid * w_grid * group.spatial_scale)  # tokens per frame, as in V-JEPA 2
        aspect = rng.uniform(*group.aspect_ratio)
        h = min(h_grid, max(1, round(math.sqrt(area * aspect))))
        w = min(w_grid, max(1, round(math.sqrt(area / aspect))))
        return t, h, w

    def _sample_target(
        self, rng: np.random.Generator, size: tuple[int, int, int], n_blocks: int
    ) -> np.ndarray:
        t_grid, h_grid, w_grid = self.grid_size
        t, h, w = size
        for _ in range(MAX_REDRAWS):
            masked = np.zeros(self.grid_size, dtype=bool)
            for _ in range(n_blocks):
                t0 = rng.integers(0, t_grid - t + 1)
                h0 = rng.integers(0, h_grid - h + 1)
                w0 = rng.integers(0, w_grid - w + 1)
                masked[t0 : t0 + t, h0 : h0 + h, w0 : w0 + w] = True
            if not masked.all():
                return masked.reshape(-1)
        raise ValueError(
            f"{n_blocks} blocks of size {size} on grid {self.grid_size} left no context "
            f"in {MAX_REDRAWS} draws"
        )

    def __call__(self, batch_size: int) -> list[tuple[Tensor, Tensor]]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        rng = self._next_rng()
        out = []
        for group in self.groups:
            size = self._block_size(rng, group)
            masks = [self._sample_target(rng, size, group.num_blocks) for _ in range(batch_size)]
            ctx = [np.flatnonzero(~m) for m in masks]
            tgt = [np.flatnonzero(m) for m in masks]
            n_ctx, n_tgt = min(len(c) for c in ctx), min(len(t) for t in tgt)
            out.append(
                (
                    torch.from_numpy(np.stack([c[:n_ctx] for c in ctx])),  # [B, Nc]
                    torch.from_numpy(np.stack([t[:n_tgt] for t in tgt])),  # [B, Nt]
                )
            )
        return out


class TubeMaskGenerator(_SeededByStep):
    """MAE tube masks: ``__call__(B) -> (keep[B, Nk], masked[B, Nm])``; one random spatial mask of
    ``ratio`` of the positions per sample, repeated at every time step."""

    def __init__(self, grid_size: Sequence[int], ratio: float = 0.9, seed: int = 0) -> None:
        super().__init__(seed)
        self.grid_size = _check_grid(grid_size)
        _, h, w = self.grid_size
        self.num_masked_per_frame = int(round(ratio * h * w))
        if not 0 < self.num_masked_per_frame < h * w:
            raise ValueError(f"tube mask ratio {ratio} on a {h}x{w} grid masks none or all positions")
        self.ratio = ratio

    def __call__(self, batch_size: int) -> tuple[Tensor, Tensor]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        rng = self._next_rng()
        t, h, w = self.grid_size
        frame_offsets = np.arange(t)[:, None] * (h * w)  # [T, 1]
        keep, masked = [], []
        for _ in range(batch_size):
            perm = rng.permutation(h * w)
            spatial_masked = np.sort(perm[: self.num_masked_per_frame])  # [Mm]
            spatial_keep = np.sort(perm[self.num_masked_per_frame :])  # [Mk]
            masked.append((frame_offsets + spatial_masked).reshape(-1))  # t-major, so already sorted
            keep.append((frame_offsets + spatial_keep).reshape(-1))
        return torch.from_numpy(np.stack(keep)), torch.from_numpy(np.stack(masked))


@dataclass(frozen=True)
class MultiBlockMask:
    """conf/mask/multiblock.yaml: the JEPA objective's mask groups (one context/target draw per group)."""

    kind: str
    groups: list[MaskGroupConfig]


@dataclass(frozen=True)
class TubeMask:
    """conf/mask/tube.yaml: the MAE objective's tube mask, ``ratio`` of the tokens masked."""

    kind: str
    ratio: float = 0.9


MASK_KINDS: dict[str, type] = {"multiblock": MultiBlockMask, "tube": TubeMask}


_mask_class = by_field("mask", "kind", MASK_KINDS)
MASK_KEYS = Dispatch(_mask_class)
register("mask", MASK_KEYS, f"{__name__}.parse_mask")


def parse_mask(cfg: Mapping[str, Any]) -> MultiBlockMask | TubeMask:
    """The `mask` group (conf/mask/*.yaml) as its dataclass; unknown keys refused."""
    return parse(_mask_class(cfg), cfg, "mask")


def build_mask_generator(
    cfg: Mapping[str, Any], grid_size: Sequence[int], seed: int = 0
) -> MultiBlockMaskGenerator | TubeMaskGenerator:
    """A generator from a conf/mask/*.yaml mapping (``kind: multiblock`` or ``kind: tube``)."""
    mask = parse_mask(cfg)
    if isinstance(mask, MultiBlockMask):
        return MultiBlockMaskGenerator(grid_size, mask.groups, seed=seed)
    return TubeMaskGenerator(grid_size, ratio=float(mask.ratio), seed=seed)
