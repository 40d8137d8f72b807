"""Report figures. Each function draws one figure, writes it as a PNG and returns the path.

Figures are drawn on `matplotlib.figure.Figure` objects (Agg canvas) rather than through pyplot, so
nothing depends on or changes the process-wide backend and no figure is left open.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

DPI = 120


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi, bbox_inches="tight")
    return path


def _as_1d(x: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def _paired(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = _as_1d(pred, "pred"), _as_1d(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in length: {pred.size} vs {target.size}")
    return pred, target


# ----------------------------------------------------------------------------- predictions CSVs


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    path = Path(path)
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            fields = list(reader.fieldnames or [])
    except OSError as err:
        raise ValueError(f"{path}: cannot read predictions CSV ({err})") from err
    if not rows:
        raise ValueError(f"{path}: predictions CSV has no rows")
    return fields, rows


def read_regression_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, target) float arrays from a predictions CSV with `prediction` and `target` columns."""
    fields, rows = _read_csv(path)
    for name in ("prediction", "target"):
        if name not in fields:
            raise ValueError(f"{path}: predictions CSV lacks the {name!r} column (has {fields})")
    try:
        pred = np.array([float(r["prediction"]) for r in rows])
        target = np.array([float(r["target"]) for r in rows])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: non-numeric prediction/target ({err})") from err
    return pred, target


def read_class_predictions(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(target index, predicted index, class names) from a classification predictions CSV.

    Class names come from the `prob_<class>` columns in file order, else from the sorted labels seen.
    `target`/`prediction` may hold class names or integer indices; without a `prediction` column the
    prediction is the argmax of the probabilities.
    """
    fields, rows = _read_csv(path)
    if "target" not in fields:
        raise ValueError(f"{path}: predictions CSV lacks the 'target' column (has {fields})")
    prob_cols = [f for f in fields if f.startswith("prob_")]
    if "prediction" not in fields and not prob_cols:
        raise ValueError(f"{path}: predictions CSV has neither 'prediction' nor prob_<class> columns")
    if prob_cols:
        classes = [c[len("prob_") :] for c in prob_cols]
    else:
        classes = sorted({r["target"] for r in rows} | {r["prediction"] for r in rows})
    lookup = {name: i for i, name in enumerate(classes)}

    def index(value: str, column: str) -> int:
        if value in lookup:
            return lookup[value]
        try:
            i = int(value)
        except ValueError:
            i = -1
        if not 0 <= i < len(classes):
            raise ValueError(f"{path}: {column} {value!r} is not one of the classes {classes}")
        return i

    target = np.array([index(r["target"], "target") for r in rows], dtype=np.int64)
    if "prediction" in fields:
        pred = np.array([index(r["prediction"], "prediction") for r in rows], dtype=np.int64)
    else:
        probs = np.array([[float(r[c]) for c in prob_cols] for r in rows])
        pred = probs.argmax(axis=1)
    return target, pred, classes


def confusion_matrix(target: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [C, C]: rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(target), np.asarray(pred)), 1)
    return matrix


# ----------------------------------------------------------------------------- LVEF agreement


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
    return _save(fig, path, dpi)


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
    return _save(fig, path, dpi)


# ----------------------------------------------------------------------------- views


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
    return _save(fig, path, dpi)


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
        x, y = _as_1d(fractions, f"{name} fractions"), _as_1d(means, f"{name} means")
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
    return _save(fig, path, dpi)


# ----------------------------------------------------------------------------- grouped bars


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
    return _save(fig, path, dpi)


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


# ----------------------------------------------------------------------------- pretraining, attention


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
        x, y = _as_1d(steps, f"{name} steps"), _as_1d(values, f"{name} values")
        if x.shape != y.shape:
            raise ValueError(f"{name}: {x.size} steps but {y.size} values")
        ax.plot(x, y, lw=1.2)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(name)
    fig.suptitle(title)
    return _save(fig, path, dpi)


# Rows of an online_probe.csv (echojepa.pretrain.online_probe) that are references, not the run's encoder.
ONLINE_REFERENCES = {"random_init": "random init", "pixel_stats": "pixel statistics", "trivial": "trivial"}
_ONLINE_NOT_METRICS = ("step", "source", "seconds", "cost_frac")


def read_online_probe_csv(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, dict]]:
    """(curves, references) from a pretraining run's online_probe.csv.

    curves: metric -> (steps, values) of the run's own encoder; references: source -> {metric: value}.
    """
    fields, rows = _read_csv(path)
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
    return _save(fig, path, dpi)


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
    return _save(fig, path, dpi)
