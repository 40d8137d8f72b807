"""Online probe curves of pretraining runs: reading a run's online_probe.csv (written during pretraining
by echojepa.pretrain.online_probe) and drawing each probe metric against the pretraining step, with the
reference encoders as horizontal lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from echojepa.report.plots.canvas import DPI, save_png
from echojepa.report.plots.predictions import read_csv_rows

# Rows of an online_probe.csv (echojepa.pretrain.online_probe) that are references, not the run's encoder.
ONLINE_REFERENCES = {"random_init": "random init", "pixel_stats": "pixel statistics", "trivial": "trivial"}
_ONLINE_NOT_METRICS = ("step", "source", "seconds", "cost_frac")


def read_online_probe_csv(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, dict]]:
    """(curves, references) from a pretraining run's online_probe.csv.

    curves: metric -> (steps, values) of the run's own encoder; references: source -> {metric: value}.
    """
    fields, rows = read_csv_rows(path)
    if "step" not in fields or "source" not in fields:
        raise ValueError(f"{path}: online probe CSV lacks the step/source columns (has {fields})")
    metrics = [f for f in fields if f not in _ONLINE_NOT_METRICS]
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    references: dict[str, dict] = {}
    try:
        for metric in metrics:
            own = [r for r in rows if r["source"] not in ONLINE_REFERENCES and r[metric] != ""]
            curves[metric] = (
                np.array([int(r["step"]) for r in own]),
                np.array([float(r[metric]) for r in own]),
            )
        for r in rows:
            if r["source"] in ONLINE_REFERENCES:
                references[r["source"]] = {m: float(r[m]) for m in metrics if r[m] != ""}
    except ValueError as err:
        raise ValueError(f"{path}: non-numeric online probe value ({err})") from err
    return curves, references


def _online_metric_label(metric: str) -> str:
    task, _, kind = metric.rpartition("_")
    names = {"acc": "accuracy", "mae": "MAE"}
    return f"{task} {names.get(kind, kind)} (val)" if task else metric


def plot_online_probes(
    runs: Mapping[str, Path],
    path: Path,
    title: str = "Online probe metric vs pretraining step",
    dpi: int = DPI,
) -> Path:
    """One panel per probe metric: each pretraining run's curve, with the random-init encoder, pixel
    statistics and the trivial predictor as horizontal references.

    runs: name -> that run's online_probe.csv. A reference shared by every run (same architecture and
    subsets) is drawn once; where runs differ it is drawn per run, in the run's colour.
    """
    if not runs:
        raise ValueError("no online probe runs to plot")
    data = {name: read_online_probe_csv(csv_path) for name, csv_path in runs.items()}
    metrics = list(dict.fromkeys(m for curves, _ in data.values() for m in curves))
    fig = Figure(figsize=(4.8 * len(metrics), 3.6))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    colours = {name: f"C{i}" for i, name in enumerate(data)}
    styles = {"random_init": "--", "pixel_stats": ":", "trivial": "-."}
    for ax, metric in zip(axes, metrics):
        for name, (curves, _) in data.items():
            if metric in curves and curves[metric][0].size:
                ax.plot(*curves[metric], marker="o", ms=3, lw=1.4, color=colours[name], label=name)
        for source, label in ONLINE_REFERENCES.items():
            values = {
                n: refs[source][metric] for n, (_, refs) in data.items() if metric in refs.get(source, {})
            }
            shared = len({round(v, 9) for v in values.values()}) == 1
            for n, value in values.items():
                colour = "grey" if shared else colours[n]
                ax.axhline(
                    value,
                    color=colour,
                    ls=styles[source],
                    lw=1.0,
                    label=label if shared else f"{label} ({n})",
                )
                if shared:
                    break
        ax.set_xlabel("pretraining step")
        ax.set_ylabel(_online_metric_label(metric))
        ax.set_title(_online_metric_label(metric))
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return save_png(fig, path, dpi)
