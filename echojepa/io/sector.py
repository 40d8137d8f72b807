"""Sector (fan) mask of an echo cine: where the ultrasound image is, as opposed to text, ECG and bars.

Recipe: pixels that change over the cine and are not black, a morphological closing to fill speckle
gaps and dark blood pools, the largest connected component (drops text, calipers and the ECG trace),
then its convex hull (the fan is convex).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Frames (evenly spaced over the whole cine) used to estimate a file's fan mask: a fixed sample, so every
# clip of one file gets the same mask and crop whatever frames it asks for.
MASK_SAMPLE_FRAMES = 16


def sample_indices(frames: int, count: int = MASK_SAMPLE_FRAMES) -> np.ndarray:
    """Up to `count` frame indices spread evenly over [0, frames), first and last included."""
    return np.unique(np.linspace(0, frames - 1, num=min(frames, count)).round().astype(np.int64))


def estimate_sector_mask(
    frames: np.ndarray,
    *,
    var_threshold: float = 8.0,
    black_threshold: float = 8.0,
    closing_frac: float = 0.03,
) -> np.ndarray:
    """[H, W] bool mask of the ultrasound fan in uint8 frames [T, H, W, 3] (or [T, H, W]).

    var_threshold: minimum temporal std (0-255 scale) of a pixel to count as moving image content; high
        enough that per-frame JPEG ringing around static overlays (MJPG AVI) stays out.
    black_threshold: minimum temporal max brightness of a pixel to count as non-black.
    closing_frac: closing structure size as a fraction of min(H, W).
    With a single frame (or no varying pixel at all) nothing can vary, so non-black pixels are used.
    An all-black input yields an all-False mask.
    """
    arr = np.asarray(frames)
    if arr.ndim == 4:
        grey = arr.max(axis=-1)  # [T, H, W]: max keeps coloured flow that is dark in one channel
    elif arr.ndim == 3:
        grey = arr
    else:
        raise ValueError(f"frames must be [T,H,W,3] or [T,H,W], got shape {arr.shape}")
    if grey.shape[0] == 0:
        raise ValueError("frames must hold at least one frame")
    grey = grey.astype(np.float32)
    height, width = grey.shape[1:]
    bright = grey.max(axis=0) > black_threshold  # [H, W]
    candidate = bright & (grey.std(axis=0) > var_threshold) if grey.shape[0] > 1 else bright
    if not candidate.any():
        candidate = bright
    if not candidate.any():
        return np.zeros((height, width), dtype=bool)

    size = max(3, int(round(closing_frac * min(height, width))) | 1)
    structure = np.ones((size, size), dtype=bool)
    # Pad before closing so structures touching the border are not eroded away.
    padded = np.pad(candidate, size)
    closed = ndimage.binary_closing(padded, structure=structure)[size:-size, size:-size]
    closed = ndimage.binary_fill_holes(closed)

    # Components are chosen on an eroded copy so thin bridges (an ECG trace close to the fan, joined by
    # the closing) are cut; the chosen core is then grown back within the closed mask.
    core = _largest_component(ndimage.binary_erosion(closed, structure=structure))
    if core is None:
        core = _largest_component(closed)
    else:
        core = _largest_component(ndimage.binary_dilation(core, structure=structure) & closed)
    if core is None:
        return np.zeros((height, width), dtype=bool)
    return fill_convex_hull(core)


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of [N, 2] points (monotone chain), counter-clockwise, without repeated end point."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)  # sorted by x then y
    if len(pts) <= 2:
        return pts

    def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[np.ndarray] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[np.ndarray] = []
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def fill_convex_hull(mask: np.ndarray) -> np.ndarray:
    """Smallest convex region (on pixel centres) containing every True pixel of an [H, W] mask."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    # Only boundary pixels can be hull vertices: far fewer points for the hull routine.
    edge = mask & ~ndimage.binary_erosion(mask)
    ys, xs = np.nonzero(edge)
    hull = convex_hull(np.stack([xs, ys], axis=1))  # [K, 2] as (x, y)
    out = np.zeros_like(mask)
    y0, y1 = ys.min(), ys.max() + 1
    x0, x1 = xs.min(), xs.max() + 1
    if len(hull) < 3:  # a point or a line segment: the mask itself is already convex
        out[mask] = True
        return out
    gy, gx = np.mgrid[y0:y1, x0:x1]  # [h, w] pixel centres of the bounding box
    inside = np.ones(gy.shape, dtype=bool)
    # A point is inside a counter-clockwise convex polygon when it is left of (or on) every edge.
    for (ax, ay), (bx, by) in zip(hull, np.roll(hull, -1, axis=0)):
        inside &= (bx - ax) * (gy - ay) - (by - ay) * (gx - ax) >= -1e-9
    out[y0:y1, x0:x1] = inside
    out |= mask
    return out


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Half-open bounding box (x0, y0, x1, y1) of the True pixels, or None for an empty mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1
