"""Reading a probe's predictions CSV into arrays: regression (prediction, target) or classification
(target index, predicted index, class names). Every reader fails with a ValueError naming the file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(column names, rows as dicts) of a CSV file; a ValueError naming the file when it cannot be read
    or has no rows."""
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
    fields, rows = read_csv_rows(path)
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
    fields, rows = read_csv_rows(path)
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
