"""Tiny synthetic echo-like cines for the io tests: a speckled fan plus static text and a moving ECG."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def fan_geometry(height: int, width: int, half_angle_deg: float = 35.0) -> np.ndarray:
    """[H, W] bool: a sector with its apex at the top centre reaching 85 % of the height."""
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    apex_x, apex_y = (width - 1) / 2.0, 2.0
    r = np.hypot(xx - apex_x, yy - apex_y)
    theta = np.degrees(np.arctan2(xx - apex_x, yy - apex_y))
    return (r <= 0.85 * height) & (np.abs(theta) <= half_angle_deg) & (yy >= apex_y)


def fan_cine(
    frames: int = 12, height: int = 96, width: int = 128, seed: int = 0, overlays: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Greyscale-as-RGB uint8 cine [T, H, W, 3] and its true fan mask [H, W].

    Inside the fan: speckle that changes every frame, with a dark (but varying) blood pool. Outside:
    static white text blocks and an ECG trace whose bright sweep moves along the bottom strip.
    """
    rng = np.random.default_rng(seed)
    fan = fan_geometry(height, width)
    yy, xx = np.mgrid[:height, :width]
    pool = (yy - 0.45 * height) ** 2 / (0.15 * height) ** 2 + (xx - width / 2) ** 2 / (0.1 * width) ** 2 < 1
    out = np.zeros((frames, height, width), dtype=np.uint8)
    for t in range(frames):
        speckle = rng.rayleigh(scale=60.0, size=(height, width))
        speckle[pool] *= 0.25
        img = np.where(fan, np.clip(speckle + 20, 0, 255), 0)
        if overlays:
            img[2:8, 2:20] = 255  # static "text" top-left
            img[4:10, width - 22 : width - 4] = 230  # static "text" top-right
            ecg_y = (height - 6 + 3 * np.sin(np.arange(width) / 4.0 + t)).astype(int)
            cols = np.arange(width)
            lit = cols < (t + 1) * width // frames  # sweep grows over time
            img[ecg_y[lit], cols[lit]] = 200
        out[t] = img.astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=-1), fan


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture
def make_fan_cine() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return fan_cine


@pytest.fixture
def mask_iou() -> Callable[[np.ndarray, np.ndarray], float]:
    return iou
