"""Attention heatmaps overlaid on a few evenly spaced frames of a clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from echojepa.report.plots.canvas import DPI, save_png


def plot_attention(
    frames: np.ndarray,
    attention: np.ndarray,
    path: Path,
    n_frames: int = 4,
    alpha: float = 0.45,
    title: str = "Attention",
    dpi: int = DPI,
) -> Path:
    """Attention heatmaps over a few evenly spaced frames.

    frames: [T, H, W, 3] uint8; attention: [Ta, h, w] float on the token grid (Ta may be T divided by
    the tubelet size; frame t shows attention map t * Ta // T). Maps are scaled to [0, 1] together so
    the panels are comparable.
    """
    frames = np.asarray(frames)
    attention = np.asarray(attention, dtype=np.float64)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be [T, H, W, 3] uint8, got {frames.shape} {frames.dtype}")
    if attention.ndim != 3 or attention.shape[0] == 0:
        raise ValueError(f"attention must be [T, h, w], got {attention.shape}")
    if not np.isfinite(attention).all():
        raise ValueError("attention holds non-finite values")
    t_frames, height, width = frames.shape[:3]
    if t_frames == 0:
        raise ValueError("no frames")
    lo, hi = attention.min(), attention.max()
    scaled = (attention - lo) / (hi - lo) if hi > lo else np.zeros_like(attention)
    picks = np.unique(np.linspace(0, t_frames - 1, min(n_frames, t_frames)).round().astype(int))
    fig = Figure(figsize=(2.6 * len(picks), 2.8))
    axes = fig.subplots(1, len(picks), squeeze=False)[0]
    for ax, t in zip(axes, picks):
        ax.imshow(frames[t])
        ax.imshow(
            scaled[t * attention.shape[0] // t_frames],
            cmap="jet",
            alpha=alpha,
            vmin=0.0,
            vmax=1.0,
            extent=(-0.5, width - 0.5, height - 0.5, -0.5),
            interpolation="bilinear",
        )
        ax.set_title(f"frame {t}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title)
    return save_png(fig, path, dpi)
