"""What every report figure shares: the default resolution, writing a figure as a PNG, and checking that
an input is a non-empty 1-D float array.

Figures are drawn on `matplotlib.figure.Figure` objects (Agg canvas) rather than through pyplot, so
nothing depends on or changes the process-wide backend and no figure is left open.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

DPI = 120


def save_png(fig: Figure, path: Path, dpi: int) -> Path:
    """Write ``fig`` to ``path`` as a PNG (parent folders made as needed) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
    return path


def as_1d(x: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """``x`` flattened to a float64 array; a ValueError naming ``name`` when it is empty."""
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr
