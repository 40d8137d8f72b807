"""The results store: one JSON record per probe evaluation plus its predictions CSV (read by the report).

Layout: <store>/records/<task>/<protocol>/<backbone>/<condition>-seed<k>-<hash>.json with the
predictions CSV beside it. An evaluation of a saved probe (``probe_checkpoint=``) is written as
<condition>-seed<k>-eval-<hash>.json, its hash covering the checkpoint path, so it never replaces the
record of the run that trained the probe. Records never carry patient identifiers: only dataset ids
(file stems, study ids) that the dataset itself uses as keys.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from echojepa.config import config_hash
from echojepa.io.atomic import atomic_write_text
from echojepa.metrics import (
    weighted_accuracy,
    weighted_auroc,
    weighted_balanced_accuracy,
    weighted_mae,
    weighted_r2,
    weighted_rmse,
    with_ci,
)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(name))


def regression_report(
    pred: np.ndarray,
    target: np.ndarray,
    groups: Sequence[str],
    binary: Mapping | None,
    n_resamples: int,
    alpha: float,
    seed: int,
) -> dict[str, dict]:
    """MAE/RMSE/R2 (+ AUROC for the task's clinical threshold), each with a patient-level bootstrap CI."""
    metrics = with_ci(
        {"mae": weighted_mae, "rmse": weighted_rmse, "r2": weighted_r2},
        pred,
        target,
        n_resamples=n_resamples,
        alpha=alpha,
        seed=seed,
        groups=groups,
    )
    if binary:
        below = binary["positive"] == "below"
        label = (target < binary["threshold"]) if below else (target >= binary["threshold"])
        score = -pred if below else pred
        if 0 < label.sum() < len(label):
            metrics |= with_ci(
                {binary["name"]: weighted_auroc},
                score,
                label.astype(np.float64),
                n_resamples=n_resamples,
                alpha=alpha,
                seed=seed,
                groups=groups,
            )
    return metrics


def classification_report(
    probs: np.ndarray, target: np.ndarray, groups: Sequence[str], n_resamples: int, alpha: float, seed: int
) -> dict[str, dict]:
    return with_ci(
        {"accuracy": weighted_accuracy, "balanced_accuracy": weighted_balanced_accuracy},
        probs,
        target,
        n_resamples=n_resamples,
        alpha=alpha,
        seed=seed,
        groups=groups,
    )


def write_record(
    store: Path,
    *,
    backbone: str,
    backbone_kind: str,
    task: str,
    protocol: str,
    condition: str,
    dataset: str,
    seed: int,
    metrics: Mapping[str, Any],
    chosen: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    predictions: Mapping[str, Sequence[Any]] | None = None,
    probe_checkpoint: str | None = None,
    extra: Mapping[str, Any] | None = None,
    n: int | None = None,
    evaluation_of: str | None = None,
) -> Path:
    """Write one record (and its predictions CSV); returns the record's path. Writes are atomic.

    ``evaluation_of``: the saved probe checkpoint these predictions came from (None: a probe trained by
    this run); such records get their own names (see the module docstring)."""
    hashed = {**config, "condition": condition, "seed": seed}
    if evaluation_of is not None:
        hashed["evaluation_of"] = str(evaluation_of)
    chash = config_hash(hashed)
    folder = Path(store) / "records" / _safe(task) / _safe(protocol) / _safe(backbone)
    stem = f"{_safe(condition)}-seed{seed}-{'eval-' if evaluation_of is not None else ''}{chash}"
    csv_rel = None
    if predictions is not None:
        cols = list(predictions)
        rows = zip(*(predictions[c] for c in cols))
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        for row in rows:
            # 9 significant digits: every float32 the probe produced reads back exactly, so two classes
            # it told apart never tie in the CSV and an accuracy recomputed from it is the record's
            w.writerow([f"{v:.9g}" if isinstance(v, float | np.floating) else v for v in row])
        atomic_write_text(folder / f"{stem}.predictions.csv", buf.getvalue())
        csv_rel = f"{stem}.predictions.csv"
    record = {
        "backbone": backbone,
        "backbone_kind": backbone_kind,
        "task": task,
        "protocol": protocol,
        "condition": condition,
        "split": "test",
        "dataset": dataset,
        "n": int(n if n is not None else len(next(iter(predictions.values()))) if predictions else 0),
        "seed": int(seed),
        "metrics": dict(metrics),
        "chosen": dict(chosen) if chosen is not None else None,
        "config_hash": chash,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "predictions_csv": csv_rel,
        "probe_checkpoint": probe_checkpoint,
        "evaluation_of": None if evaluation_of is None else str(evaluation_of),
        "extra": dict(extra or {}),
    }
    path = folder / f"{stem}.json"
    atomic_write_text(path, json.dumps(record, indent=2, default=float))
    return path


def find_record(
    store: Path, task: str, protocol: str, backbone: str, condition: str, seed: int
) -> Path | None:
    """An existing record of this evaluation by a probe trained for it (any config hash; evaluations of
    saved probes are not counted), for resumable pipelines."""
    folder = Path(store) / "records" / _safe(task) / _safe(protocol) / _safe(backbone)
    hits = sorted(p for p in folder.glob(f"{_safe(condition)}-seed{seed}-*.json") if "-eval-" not in p.name)
    return hits[-1] if hits else None
