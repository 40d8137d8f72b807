"""The generic CSV reader: one row per clip (`path,label[,split,patient,study,view]`), any layout."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from echojepa.data.datasets.errors import Issues
from echojepa.data.datasets.splits import (
    DEFAULT_SPLIT_FRACTIONS,
    enforce_patient_splits,
    hash_split,
    normalise_split,
)
from echojepa.data.datasets.tables import label_problem, read_table, require_root
from echojepa.data.index import DatasetIndex, Record


def read_csv_index(
    root: Path,
    *,
    csv_name: str = "index.csv",
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    on_error: str = "raise",
) -> DatasetIndex:
    """A generic CSV `path,label[,split,patient,study,view]` (root: the CSV, or a folder holding `csv_name`).

    Paths are relative to the CSV's folder or absolute. A numeric label gives {"label": float}, any
    other text a class name. Rows without a split are hashed by patient (by path without a patient).
    """
    root = Path(root).expanduser().resolve()
    table = root if root.is_file() else require_root(root) / csv_name
    rows = read_table(table, ["path"])
    base = table.parent
    hash_split("", split_fractions)
    issues = Issues(on_error)
    records = []
    for row in rows:
        path = Path(row["path"])
        path = path if path.is_absolute() else base / path
        labels: dict[str, float | str] = {}
        try:
            if "label" in row:
                text = row["label"]
                if text == "":
                    raise ValueError("label is empty")
                try:
                    value: float | str = float(text)
                except ValueError:
                    value = text
                problem = label_problem("label", value)
                if problem:
                    raise ValueError(problem)
                labels["label"] = value
            patient = row.get("patient") or row["path"]
            split = (
                normalise_split(row["split"]) if row.get("split") else hash_split(patient, split_fractions)
            )
        except ValueError as e:
            issues.bad(path, f"{table.name}: {e}")
            continue
        if not path.is_file():
            issues.bad(path, f"listed in {table.name} but the file is missing")
            continue
        records.append(
            Record(
                path=path,
                split=split,
                patient=patient,
                study=row.get("study") or patient,
                view=row.get("view") or None,
                labels=labels,
            )
        )
    records = enforce_patient_splits(records, issues)
    return DatasetIndex("csv", table, records, issues.skipped)
