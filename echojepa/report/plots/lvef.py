"""LVEF agreement figures: Bland-Altman (difference against mean, with bias and limits of agreement) and
predicted against true with the identity line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from echojepa.report.plots.canvas import DPI, as_1d, save_png


def _paired(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = as_1d(pred, "pred"), as_1d(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in length: {pred.size} vs {target.size}")
    return pred, target


def plot_bland_altman(
    pred: np.ndarray,
    target: np.ndarray,
    path: Path,
    title: str = "Bland-Altman",
    unit: str = "%",
    dpi: int = DPI,
) -> Path:
    """Difference (pred - true) against the mean of both, with the bias and bias ± 1.96 SD lines."""
    pred, target = _paired(pred, target)
    mean, diff = (pred + target) / 2, pred - target
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.add_subplot()
    ax.scatter(mean, diff, s=10, alpha=0.6, color="tab:blue")
    ax.axhline(bias, color="black", lw=1.2, label=f"bias {bias:+.2f}")
    for sign in (-1, 1):
        ax.axhline(bias + sign * 1.96 * sd, color="tab:red", ls="--", lw=1.0)
    ax.plot([], [], color="tab:red", ls="--", label=f"LoA {bias - 1.96 * sd:.2f} .. {bias + 1.96 * sd:.2f}")
    ax.set_xlabel(f"mean of predicted and true ({unit})")
    ax.set_ylabel(f"predicted - true ({unit})")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    return save_png(fig, path, dpi)


def plot_pred_vs_true(
    pred: np.ndarray,
    target: np.ndarray,
    path: Path,
    title: str = "Predicted vs true",
    unit: str = "%",
    dpi: int = DPI,
) -> Path:
    """Scatter of predicted against true values with the identity line; MAE in the legend."""
    pred, target = _paired(pred, target)
    lo, hi = float(min(pred.min(), target.min())), float(max(pred.max(), target.max()))
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    ax.scatter(
        target, pred, s=10, alpha=0.6, color="tab:blue", label=f"MAE {np.abs(pred - target).mean():.2f}"
    )
    ax.plot([lo, hi], [lo, hi], color="black", lw=1.0, ls=":")
    ax.set_xlabel(f"true ({unit})")
    ax.set_ylabel(f"predicted ({unit})")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return save_png(fig, path, dpi)
