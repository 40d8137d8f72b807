"""Grouped bar charts, one group per condition and one bar per backbone: acoustic robustness and adult to
pediatric LVEF transfer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from echojepa.report.plots.canvas import DPI, save_png


def plot_grouped_bars(
    data: Mapping[str, Mapping[str, float | None]],
    conditions: Sequence[tuple[str, str]],
    path: Path,
    ylabel: str,
    title: str,
    dpi: int = DPI,
) -> Path:
    """One group of bars per condition, one bar per backbone; a missing value leaves a gap.

    data: backbone -> condition key -> value; conditions: (key, label) in display order.
    """
    if not data or not conditions:
        raise ValueError("nothing to plot: no backbones or no conditions")
    names = list(data)
    width = 0.8 / len(names)
    x = np.arange(len(conditions))
    fig = Figure(figsize=(max(5.0, 0.9 * len(conditions) + 2.5), 4.0))
    ax = fig.add_subplot()
    for k, name in enumerate(names):
        values = [data[name].get(key) for key, _ in conditions]
        heights = np.array([np.nan if v is None else float(v) for v in values])
        ax.bar(x + (k - (len(names) - 1) / 2) * width, heights, width, label=name)
    ax.set_xticks(x, labels=[label for _, label in conditions], rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bars fill the axes
    return save_png(fig, path, dpi)


def plot_robustness(
    data: Mapping[str, Mapping[str, float | None]],
    conditions: Sequence[tuple[str, str]],
    path: Path,
    title: str = "LVEF MAE under acoustic degradation",
    dpi: int = DPI,
) -> Path:
    """MAE per degradation condition per backbone."""
    return plot_grouped_bars(data, conditions, path, "LVEF MAE", title, dpi)


def plot_pediatric(
    data: Mapping[str, Mapping[str, float | None]],
    path: Path,
    conditions: Sequence[tuple[str, str]] = (("zero_shot", "Zero-Shot"), ("fine_tuned", "Fine-Tuned")),
    title: str = "Adult to pediatric LVEF transfer",
    dpi: int = DPI,
) -> Path:
    """Pediatric LVEF MAE, zero-shot vs fine-tuned probe, per backbone."""
    return plot_grouped_bars(data, conditions, path, "pediatric LVEF MAE", title, dpi)
