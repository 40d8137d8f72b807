"""Pixel statistics: a non-learned backbone floor that still sees the dynamics (``kind: pixel_stats``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from echojepa.data.preprocess import Preprocess
from echojepa.probe.backbone_base import Backbone, BackboneError, backbone_preprocess

VECTOR_FEATURES = ("mean", "log_std", "log_amplitude", "frequency", "log_motion", "log_range")


PIXEL_STAT_FEATURES = (
    "mean",
    "std",
    "dominant_amplitude",
    "dominant_frequency",
    "motion",
    "range",
    "row",
    "col",
)


PIXEL_TOKEN_FEATURES = ("mean", "spatial_std", "motion", "change", "time", "row", "col")


PIXEL_LAYOUTS = ("tokens", "cells", "vector")


class PixelStatsBackbone(Backbone):
    """A non-learned floor. Layouts:

    ``tokens`` (the default): a space-time token sequence like any video encoder's. The clip is cut into
    tubelets of ``tubelet`` frames x one cell of a g x g grid; each tubelet gives one token of
    ``PIXEL_TOKEN_FEATURES``: its mean intensity, mean within-cell spatial std (texture, speckle), mean
    |x(t+1) - x(t)| per pixel over its frame pairs (motion; 0 for one frame), signed change of the cell
    mean from its first to its last frame, and its normalised (time, row, column) centre. Tokens come
    in (tubelet, row, column) order: ``token_grid`` is (T / tubelet, g, g). Nothing is summarised over
    the whole clip: relating tubelets across time (where EF lives) is left to the probe, as for an encoder.

    ``cells`` / ``vector`` (the earlier floors): per cell, statistics of the whole clip's cell-mean series
    s(t) (``PIXEL_STAT_FEATURES``: temporal mean and std, amplitude and frequency of its strongest non-DC
    Fourier component, mean |s(t+1) - s(t)|, max - min, and the cell's row/column); one token per cell, or
    one token of every cell (``vector``, the scale-free ones in log space).

    Expects 0-1 intensities (its preprocess has mean 0, std 1).
    """

    # means, stds, differences and an FFT: nothing CPU/CUDA autocast casts to bf16, so a bf16 feature pass
    # would compute the same float32 numbers under another cache key and record
    reduced_precision_forward = False

    def __init__(
        self,
        grid: int,
        name: str,
        preprocess: Preprocess,
        config: Mapping[str, Any],
        layout: str = "cells",
        tubelet: int = 2,
    ) -> None:
        if layout not in PIXEL_LAYOUTS:
            raise BackboneError(f"pixel_stats layout must be one of {list(PIXEL_LAYOUTS)}, got {layout!r}")
        dim = {
            "tokens": len(PIXEL_TOKEN_FEATURES),
            "cells": len(PIXEL_STAT_FEATURES),
            "vector": grid * grid * len(VECTOR_FEATURES),
        }[layout]
        super().__init__(name, "pixel_stats", preprocess, dim, config)
        if grid < 1 or tubelet < 1:
            raise BackboneError(f"pixel_stats grid and tubelet must be >= 1, got {grid} and {tubelet}")
        self.grid = int(grid)
        self.layout = layout
        self.tubelet = int(tubelet)

    def encode(self, video: Tensor) -> Tensor:
        if self.layout == "tokens":
            return self.tubelet_stats(video)  # [B, T'*g*g, 7]
        cells = self.cell_stats(video)  # [B, G, 8]
        if self.layout == "cells":
            return cells
        # One token of every cell's statistics, the scale-free ones in log space so that amplitudes
        # (~1e-2) and means (~0.3) meet the probe's LayerNorm on a comparable scale.
        eps = 1e-4
        mean, std, amp, freq, motion, span = (cells[..., i] for i in range(6))
        feats = torch.stack(
            [mean, (std + eps).log(), (amp + eps).log(), freq, (motion + eps).log(), (span + eps).log()],
            dim=-1,
        )  # [B, G, 6]
        return feats.flatten(1)[:, None]  # [B, 1, G*6]

    def token_grid(self, clip_shape: Sequence[int]) -> tuple[int, int, int] | None:
        """``tokens``: (T / tubelet, g, g). ``cells``: one token per cell, rows then columns, each
        summarising the whole clip in time, so (1, g, g). ``vector``: one token of every cell's
        statistics, which has no place on the clip."""
        if self.layout == "tokens":
            return self._tubelets(int(clip_shape[1])), self.grid, self.grid
        return (1, self.grid, self.grid) if self.layout == "cells" else None

    def _tubelets(self, frames: int) -> int:
        if frames % self.tubelet:
            raise ValueError(
                f"pixel_stats: a clip of {frames} frames does not split into tubelets of {self.tubelet}"
            )
        return frames // self.tubelet

    def tubelet_stats(self, video: Tensor) -> Tensor:
        """[B, 3, T, H, W] (0-1) -> [B, T/tubelet * g * g, 7] tokens, see the class docstring."""
        b, _, t, _, _ = video.shape
        g, k = self.grid, self.tubelet
        tt = self._tubelets(t)
        x = video.float().mean(dim=1)  # [B, T, H, W]
        mean_px = F.adaptive_avg_pool2d(x, (g, g))  # [B, T, g, g] cell means per frame
        var_px = (F.adaptive_avg_pool2d(x * x, (g, g)) - mean_px.square()).clamp_min(0.0)
        per_frame = mean_px.view(b, tt, k, g, g)
        mean = per_frame.mean(dim=2)  # [B, T', g, g]
        spatial_std = var_px.sqrt().view(b, tt, k, g, g).mean(dim=2)
        change = per_frame[:, :, -1] - per_frame[:, :, 0]
        if k > 1:
            diff = (x[:, 1:] - x[:, :-1]).abs()  # [B, T-1, H, W]
            pair_cells = F.adaptive_avg_pool2d(diff, (g, g))  # [B, T-1, g, g]
            inside = torch.arange(t - 1, device=video.device) % k != k - 1  # pairs within a tubelet
            motion = pair_cells[:, inside].view(b, tt, k - 1, g, g).mean(dim=2)
        else:
            motion = torch.zeros_like(mean)
        t_pos = (torch.arange(tt, device=video.device, dtype=mean.dtype) + 0.5) / tt
        pos = (torch.arange(g, device=video.device, dtype=mean.dtype) + 0.5) / g
        time, row, col = torch.meshgrid(t_pos, pos, pos, indexing="ij")  # [T', g, g]
        feats = [mean, spatial_std, motion, change] + [p.expand(b, tt, g, g) for p in (time, row, col)]
        return torch.stack(feats, dim=-1).reshape(b, tt * g * g, len(PIXEL_TOKEN_FEATURES))

    def cell_stats(self, video: Tensor) -> Tensor:
        b, _, t, _, _ = video.shape
        g = self.grid
        x = video.float().mean(dim=1)  # [B, T, H, W]
        cells = F.adaptive_avg_pool2d(x, (g, g)).reshape(b, t, g * g).transpose(1, 2)  # [B, G, T]
        mean = cells.mean(dim=-1)
        std = cells.std(dim=-1, unbiased=False) if t > 1 else torch.zeros_like(mean)
        spectrum = torch.fft.rfft(cells - mean[..., None], dim=-1).abs()  # [B, G, T//2+1]
        if spectrum.shape[-1] > 1:
            peak, k = spectrum[..., 1:].max(dim=-1)
            # one-sided amplitude of a sinusoid; the Nyquist bin (even T) is not doubled
            nyquist = (t % 2 == 0) & (k + 1 == t // 2)
            amplitude = peak * torch.where(nyquist, 1.0, 2.0) / t
            frequency = (k + 1).float() / t
        else:
            amplitude = frequency = torch.zeros_like(mean)
        motion = (cells[..., 1:] - cells[..., :-1]).abs().mean(dim=-1) if t > 1 else torch.zeros_like(mean)
        span = cells.amax(dim=-1) - cells.amin(dim=-1)
        pos = (torch.arange(g, device=video.device, dtype=mean.dtype) + 0.5) / g
        row = pos.repeat_interleave(g).expand(b, -1)  # [B, G]
        col = pos.repeat(g).expand(b, -1)  # [B, G]
        return torch.stack([mean, std, amplitude, frequency, motion, span, row, col], dim=-1)  # [B, G, 8]


def build_pixel_stats(cfg: Mapping[str, Any]) -> Backbone:
    preprocess = backbone_preprocess(cfg)
    return PixelStatsBackbone(
        int(cfg.get("grid", 8)),
        str(cfg.get("name") or "pixel_stats"),
        preprocess,
        cfg,
        layout=str(cfg.get("layout", "cells")),
        tubelet=int(cfg.get("tubelet", 2)),
    ).freeze()
