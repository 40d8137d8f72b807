"""Pretraining loss against step, one panel per objective."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from echojepa.report.plots.canvas import DPI, as_1d, save_png


def plot_loss_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    title: str = "Pretraining loss",
    log_y: bool = False,
    dpi: int = DPI,
) -> Path:
    """Loss against step, one panel per objective (their losses live on different scales).

    curves: name -> (steps, values).
    """
    if not curves:
        raise ValueError("no loss curves to plot")
    fig = Figure(figsize=(4.5 * len(curves), 3.5))
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (name, (steps, values)) in zip(axes, curves.items()):
        x, y = as_1d(steps, f"{name} steps"), as_1d(values, f"{name} values")
        if x.shape != y.shape:
            raise ValueError(f"{name}: {x.size} steps but {y.size} values")
        ax.plot(x, y, lw=1.2)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(name)
    fig.suptitle(title)
    return save_png(fig, path, dpi)
