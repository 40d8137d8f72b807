"""Attention maps as pictures: token weights -> per-frame heat -> overlaid PNG strip and animated GIF.

The chosen attentive head's cross-attention weights over the tokens (averaged over attention heads,
per clip) are laid on the backbone's token grid (T', H', W'), upsampled to the model's input frames
and overlaid as a heatmap. A task's maps share one min-max scale (least / most attended token of any
of its clips = 0 / 1), so its clips compare with each other. Files are written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from echojepa.io.atomic import atomic_write
from echojepa.predict.options import PredictOptions

__all__ = ["attention_rows", "heat_volume", "overlay", "write_gif", "write_strip"]

# Height of the label bar above a panel, in px: one line of PIL's default font.
_LABEL_PX = 14


def heat_volume(weights: np.ndarray, grid: tuple[int, int, int], frames: int, size: int) -> np.ndarray:
    """Token weights [W, N] on grid (T', H', W') -> per-frame heat [W, F, S, S]: bilinear in space; in
    time each frame takes its tubelet's value (a tubelet is one token for all its frames)."""
    t, h, w = grid
    a = torch.as_tensor(weights, dtype=torch.float32).reshape(-1, t, h, w)  # [W, T', H', W']
    up = F.interpolate(a.reshape(-1, 1, h, w), size=(size, size), mode="bilinear", align_corners=False)
    up = up.reshape(a.shape[0], t, size, size)  # [W, T', S, S]
    idx = (torch.arange(frames) * t) // frames  # frame -> its tubelet
    return up[:, idx].clamp_min(0).numpy()  # [W, F, S, S]


def overlay(frames: np.ndarray, heat: np.ndarray, cmap: str, alpha: float) -> np.ndarray:
    """frames [F, S, S, 3] uint8, heat [F, S, S] in 0-1 -> blended uint8 [F, S, S, 3]."""
    from matplotlib import colormaps

    colour = colormaps[cmap](heat)[..., :3] * 255.0  # [F, S, S, 3]
    return np.clip((1.0 - alpha) * frames + alpha * colour, 0, 255).round().astype(np.uint8)


def _short(value: Any) -> str:
    """A task's result as a label: top class with its probability, or the regressed value."""
    if isinstance(value, Mapping) and "top" in value:
        return f"{value['top']} ({value['probability']:.2f})"
    if isinstance(value, float):
        return f"{value:.1f}"
    return "-"


def attention_rows(
    maps: Mapping[str, tuple[np.ndarray, Sequence[np.ndarray]]],
    grid: tuple[int, int, int],
    clip_shape: Sequence[int],
    result: Mapping[str, Any],
    opt: PredictOptions,
) -> list[tuple[str, np.ndarray]]:
    """One (label, overlaid frames [F, S, S, 3] uint8) row per drawn clip.

    ``maps``: task -> (per-window token weights [W, N], the first clips as the model sees them
    [F, S, S, 3] uint8); ``clip_shape`` [C, F, S, S] is the model's input; ``result`` gives the labels."""
    rows: list[tuple[str, np.ndarray]] = []
    for name, (weights, frames) in maps.items():
        heat = heat_volume(weights[: len(frames)], grid, clip_shape[1], clip_shape[2])  # [W, F, S, S]
        lo, hi = float(heat.min()), float(heat.max())
        heat = (heat - lo) / max(hi - lo, 1e-12)  # one scale per task, so its clips compare
        for w, (h, f) in enumerate(zip(heat, frames)):
            label = f"{name} clip {w + 1}/{len(weights)}: {_short(result.get(name))}"
            rows.append((label, overlay(f, h, opt.colormap, opt.overlay_alpha)))
    return rows


def _panel(frame: np.ndarray, label: str | None, size: int):
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR)
    if label is None:
        return img
    canvas = Image.new("RGB", (size, size + _LABEL_PX), (0, 0, 0))
    canvas.paste(img, (0, _LABEL_PX))
    ImageDraw.Draw(canvas).text((2, 1), label, fill=(255, 255, 255))
    return canvas


def write_strip(path: Path, rows: Sequence[tuple[str, np.ndarray]], opt: PredictOptions) -> None:
    """One row per clip: a label bar, then ``attention_frames`` evenly spaced frames."""
    from PIL import Image, ImageDraw

    size = opt.display_size
    n_frames = rows[0][1].shape[0]
    cols = np.unique(np.linspace(0, n_frames - 1, min(opt.attention_frames, n_frames)).round().astype(int))
    row_h = size + _LABEL_PX
    sheet = Image.new("RGB", (size * len(cols), row_h * len(rows)), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for r, (label, frames) in enumerate(rows):
        draw.text((2, r * row_h + 1), label, fill=(255, 255, 255))
        for c, t in enumerate(cols):
            sheet.paste(_panel(frames[t], None, size), (c * size, r * row_h + _LABEL_PX))
    atomic_write(path, lambda f: sheet.save(f, format="PNG"))


def write_gif(path: Path, rows: Sequence[tuple[str, np.ndarray]], opt: PredictOptions) -> None:
    """Every frame of the clips, the clips stacked vertically."""
    from PIL import Image

    size = opt.display_size
    n_frames = min(frames.shape[0] for _, frames in rows)
    images = []
    for t in range(n_frames):
        canvas = Image.new("RGB", (size, (size + _LABEL_PX) * len(rows)), (0, 0, 0))
        for r, (label, frames) in enumerate(rows):
            canvas.paste(_panel(frames[t], label, size), (0, r * (size + _LABEL_PX)))
        images.append(canvas)
    atomic_write(
        path,
        lambda f: images[0].save(
            f, format="GIF", save_all=True, append_images=images[1:], duration=opt.gif_frame_ms, loop=0
        ),
    )
