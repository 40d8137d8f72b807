"""The EchoNet-Pediatric reader (one folder per view, a fold number as split) and its fold convention."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from echojepa.data.datasets.errors import Issues
from echojepa.data.datasets.tables import (
    parse_labels,
    parse_number,
    read_table,
    require_root,
    traced_frames,
    with_avi,
)
from echojepa.data.index import DatasetIndex, Record

PEDIATRIC_FOLDS = 10


def pediatric_fold_split(fold: int, test_fold: int = 0, folds: int = PEDIATRIC_FOLDS) -> str:
    """Cross-validation convention: test = fold k, val = fold (k + 1) mod 10, train = the rest."""
    if fold == test_fold:
        return "test"
    return "val" if fold == (test_fold + 1) % folds else "train"


def read_echonet_pediatric(
    root: Path,
    *,
    views: Sequence[str] = ("A4C", "PSAX"),
    test_fold: int = 0,
    folds: int = PEDIATRIC_FOLDS,
    on_error: str = "raise",
) -> DatasetIndex:
    """EchoNet-Pediatric: `<view>/FileList.csv`, `<view>/VolumeTracings.csv`, `<view>/Videos/*.avi`.

    patient = study = accession (`FileName.split('-')[1]`), so the A4C and PSAX clips of one exam share
    a split; an accession listed in two folds is an error (never a leak).
    """
    root = require_root(root)
    if not 0 <= test_fold < folds:
        raise ValueError(f"test_fold must be in [0, {folds}), got {test_fold}")
    views = [views] if isinstance(views, str) else list(views)
    issues = Issues(on_error)
    rows_by_view: list[tuple[str, Path, dict[str, str], int, str]] = []  # view, path, row, fold, accession
    tracings: dict[str, tuple[dict[str, set[int]], dict[str, set[str]]]] = {}
    for view in views:
        table = root / view / "FileList.csv"
        rows = read_table(table, ["FileName", "EF", "Split"])
        tracing_file = root / view / "VolumeTracings.csv"
        if tracing_file.is_file():
            tracings[view] = traced_frames(read_table(tracing_file, ["FileName", "Frame"]))
        for row in rows:
            name = with_avi(row["FileName"])
            path = root / view / "Videos" / name
            parts = Path(name).stem.split("-")
            if len(parts) < 2 or not parts[1]:
                issues.bad(path, f"{table.name}: cannot read the accession from FileName {name!r}")
                continue
            try:
                fold = int(float(row["Split"]))
            except ValueError:
                issues.bad(path, f"{table.name}: unknown split value {row['Split']!r} (expected a fold)")
                continue
            if not 0 <= fold < folds:
                issues.bad(path, f"{table.name}: fold {fold} outside 0-{folds - 1}")
                continue
            rows_by_view.append((view, path, row, fold, parts[1]))

    folds_of: dict[str, set[int]] = defaultdict(set)
    for _, _, _, fold, accession in rows_by_view:
        folds_of[accession].add(fold)

    records = []
    for view, path, row, fold, accession in rows_by_view:
        seen = sorted(folds_of[accession])
        if len(seen) > 1:
            issues.bad(path, f"exam {accession} is in several folds {seen}: it would leak")
            continue
        try:
            labels = parse_labels(row, {"ef": "EF"}, required=True)
            meta: dict = {"population": "pediatric", "fold": fold}
            for key, column in (("age", "Age"), ("weight", "Weight"), ("height", "Height")):
                value = parse_number(row.get(column, ""), key)
                if value is not None:
                    meta[key] = value
        except ValueError as e:
            issues.bad(path, f"FileList.csv: {e}")
            continue
        if row.get("Sex"):
            meta["sex"] = row["Sex"].upper()
        if not path.is_file():
            issues.bad(path, "listed in FileList.csv but the file is missing")
            continue
        frames, notes = tracings.get(view, ({}, {}))
        if path.name in frames:
            meta["traced_frames"] = sorted(frames[path.name])
        if path.name in notes:
            meta["tracing_notes"] = sorted(notes[path.name])
        split = pediatric_fold_split(fold, test_fold, folds)
        records.append(
            Record(
                path=path,
                split=split,
                patient=accession,
                study=accession,
                view=view,
                labels=labels,
                meta=meta,
            )
        )
    return DatasetIndex("echonet_pediatric", root, records, issues.skipped)
