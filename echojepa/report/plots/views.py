"""View classification figures: the confusion matrix (counted from target and predicted indices, drawn
row-normalised) and accuracy against the labelled training fraction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from echojepa.report.plots.canvas import DPI, as_1d, save_png


def confusion_matrix(target: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [C, C]: rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(target), np.asarray(pred)), 1)
    return matrix


def plot_confusion(
    matrix: np.ndarray, class_names: Sequence[str], path: Path, title: str = "View confusion", dpi: int = DPI
) -> Path:
    """Row-normalised confusion matrix (each true class sums to 1; empty rows stay 0)."""
    counts = np.asarray(matrix, dtype=np.float64)
    c = len(class_names)
    if counts.shape != (c, c):
        raise ValueError(f"confusion matrix shape {counts.shape} does not match {c} class names")
    totals = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = max(3.5, 0.55 * c + 1.5)
    fig = Figure(figsize=(size + 0.8, size))
    ax = fig.add_subplot()
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(c), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(c), labels=list(class_names))
    for i in range(c):
        for j in range(c):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save_png(fig, path, dpi)


def plot_sample_efficiency(
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float | None]]],
    path: Path,
    title: str = "Sample efficiency (view accuracy)",
    dpi: int = DPI,
) -> Path:
    """Accuracy (fractions, shown in %) against the labelled fraction (log x), mean ± sd per backbone.

    series: backbone -> (fractions, means, sds); an sd may be None (a single seed).
    """
    if not series:
        raise ValueError("no sample-efficiency series to plot")
    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.add_subplot()
    ticks: set[float] = set()
    for name, (fractions, means, sds) in series.items():
        x, y = as_1d(fractions, f"{name} fractions"), as_1d(means, f"{name} means")
        if x.shape != y.shape or len(sds) != x.size:
            raise ValueError(f"{name}: fractions, means and sds differ in length")
        err = np.array([0.0 if s is None else float(s) for s in sds])
        ax.errorbar(x, 100 * y, yerr=100 * err, marker="o", capsize=3, label=name)
        ticks.update(x.tolist())
    ax.set_xscale("log")
    ax.set_xticks(sorted(ticks), labels=[f"{100 * t:g}%" for t in sorted(ticks)])
    ax.set_xlabel("labelled training fraction")
    ax.set_ylabel("view accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_png(fig, path, dpi)
