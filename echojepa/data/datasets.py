"""Index readers: one per on-disk dataset layout, each producing a `DatasetIndex` of clip records.

Readers only look at tables and file existence (MIMIC also probes DICOM headers to tell cines from
stills and Doppler spectra); decoding is the job of `echojepa.data.check` and of the io layer at load
time. Splits are assigned per patient/exam, never per clip, and a patient found in two splits is an
error (or, with `on_error="skip"`, all of that patient's clips are skipped and counted).

Bad rows raise `DatasetError` (a ValueError naming the file and the reason) by default; with
`on_error="skip"` they are left out, logged and counted in `DatasetIndex.skipped`. No row is ever
replaced by another one.

The module is long because the four readers share one set of row parsers, label range checks and
per-patient split rules, which must stay together for every layout to treat bad rows alike.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from echojepa.data.index import SPLITS, DatasetIndex, Record

log = logging.getLogger(__name__)

# Plausible physical ranges of the labels the readers know; a value outside is a bad row.
LABEL_RANGES: dict[str, tuple[float, float]] = {
    "ef": (0.0, 100.0),
    "rvsp": (0.0, 150.0),
    "esv": (0.0, math.inf),
    "edv": (0.0, math.inf),
}
# Reasons of expected exclusions (MIMIC stills / Doppler) start with this; they are not problems.
NOT_A_CINE = "not a cine"
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
PEDIATRIC_FOLDS = 10
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


class DatasetError(ValueError):
    """A dataset table or file is unusable. The message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class _Issues:
    """Applies the `on_error` policy: raise on the first bad row, or skip, log and count it."""

    def __init__(self, on_error: str) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.skipped: list[tuple[str, str]] = []

    def bad(self, path: str | Path, reason: str) -> None:
        if self.on_error == "raise":
            raise DatasetError(path, reason)
        log.warning("skipped %s: %s", path, reason)
        self.skipped.append((str(path), reason))

    def exclude(self, path: str | Path, reason: str) -> None:
        """An expected exclusion (not an error): always counted, never raised."""
        log.info("excluded %s: %s", path, reason)
        self.skipped.append((str(path), reason))


# ----------------------------------------------------------------------------- small parsers


def _read_table(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; a missing file or column is a structural error (always raised)."""
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in required if c not in columns]
            if missing:
                raise DatasetError(path, f"missing column(s) {missing}; found {columns}")
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except UnicodeDecodeError as e:  # the codec's message names no file
        bad = e.object[e.start : e.start + 1].hex()
        raise DatasetError(path, f"not UTF-8 text (undecodable byte 0x{bad}); save it as UTF-8") from None


def _number(text: str, name: str) -> float | None:
    """A float from a table cell, None when the cell is empty; raises ValueError with the reason."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"label {name}={text!r} is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"label {name}={text!r} is not a finite number")
    return value


def label_problem(name: str, value: float | str) -> str | None:
    """Why a label value is unusable (None when fine): non-finite or outside `LABEL_RANGES`."""
    if isinstance(value, str):
        return None if value else f"label {name} is empty"
    if math.isnan(value) or math.isinf(value):
        return f"label {name}={value} is not a finite number"
    lo, hi = LABEL_RANGES.get(name, (-math.inf, math.inf))
    if not lo <= value <= hi:
        return f"label {name}={value:g} outside the range [{lo:g}, {hi:g}]"
    return None


def _labels(row: dict[str, str], columns: dict[str, str], required: bool) -> dict[str, float]:
    """Numeric labels {name: value} from `columns` {label name: column}; raises ValueError if bad."""
    out: dict[str, float] = {}
    for name, column in columns.items():
        value = _number(row.get(column, ""), name)
        if value is None:
            if required:
                raise ValueError(f"label {name} is missing")
            continue
        problem = label_problem(name, value)
        if problem:
            raise ValueError(problem)
        out[name] = value
    return out


def normalise_split(value: str) -> str:
    """'TRAIN' / 'Val' / 'validation' -> 'train' / 'val'; raises ValueError for anything else."""
    split = _SPLIT_ALIASES.get(value.strip().lower())
    if split is None:
        raise ValueError(f"unknown split value {value!r} (expected one of {list(SPLITS)})")
    return split


def hash_split(key: str, fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> str:
    """A deterministic train/val/test split from a patient key (same key, same split, any machine)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    u = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:12], 16) / float(16**12)  # uniform in [0, 1)
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def _enforce_patient_splits(records: list[Record], issues: _Issues, unit: str = "patient") -> list[Record]:
    """Drop (or raise on) every clip of a patient that sits in more than one split: no leaks."""
    splits: dict[str, set[str]] = defaultdict(set)
    for r in records:
        splits[r.patient].add(r.split)
    kept = []
    for r in records:
        seen = splits[r.patient]
        if len(seen) > 1:
            issues.bad(r.path, f"{unit} {r.patient} is in several splits {sorted(seen)}: it would leak")
        else:
            kept.append(r)
    return kept


def _require_root(root: Path) -> Path:
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise DatasetError(root, "dataset root does not exist")
    return root


def _traced_frames(rows: Iterable[dict[str, str]]) -> tuple[dict[str, set[int]], dict[str, set[str]]]:
    """Per file name: the traced frame numbers, and any non-numeric Frame notes ('No Systolic')."""
    frames: dict[str, set[int]] = defaultdict(set)
    notes: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        name, frame = row["FileName"], row["Frame"]
        try:
            frames[name].add(int(float(frame)))
        except ValueError:
            if frame:
                notes[name].add(frame)
    return frames, notes


def _with_avi(name: str) -> str:
    return name if name.lower().endswith(".avi") else f"{name}.avi"


# ----------------------------------------------------------------------------- EchoNet-Dynamic


def read_echonet_dynamic(root: Path, *, on_error: str = "raise") -> DatasetIndex:
    """EchoNet-Dynamic: `FileList.csv`, optional `VolumeTracings.csv`, `Videos/<FileName>.avi`.

    One record per video (A4C); patient = study = file stem; labels ef/esv/edv; the released
    TRAIN/VAL/TEST split (any case). Traced frames go to `meta["traced_frames"]`.
    """
    root = _require_root(root)
    issues = _Issues(on_error)
    table = root / "FileList.csv"
    rows = _read_table(table, ["FileName", "EF", "ESV", "EDV", "Split"])
    traced: dict[str, set[int]] = {}
    if (root / "VolumeTracings.csv").is_file():
        traced, _ = _traced_frames(_read_table(root / "VolumeTracings.csv", ["FileName", "Frame"]))

    records = []
    for row in rows:
        name = _with_avi(row["FileName"])
        path = root / "Videos" / name
        try:
            split = normalise_split(row["Split"])
            labels = _labels(row, {"ef": "EF", "esv": "ESV", "edv": "EDV"}, required=True)
            meta = {
                k: _number(row.get(c, ""), c)
                for k, c in (
                    ("fps", "FPS"),
                    ("frames", "NumberOfFrames"),
                    ("height", "FrameHeight"),
                    ("width", "FrameWidth"),
                )
            }
        except ValueError as e:
            issues.bad(path, f"{table.name}: {e}")
            continue
        if meta["frames"] is not None and meta["frames"] <= 0:
            issues.bad(path, f"{table.name}: NumberOfFrames={meta['frames']:g} (zero frames)")
            continue
        if not path.is_file():
            issues.bad(path, "listed in FileList.csv but the file is missing")
            continue
        meta = {k: v for k, v in meta.items() if v is not None}
        if name in traced:
            meta["traced_frames"] = sorted(traced[name])
        stem = Path(name).stem
        records.append(
            Record(path=path, split=split, patient=stem, study=stem, view="A4C", labels=labels, meta=meta)
        )
    return DatasetIndex("echonet_dynamic", root, records, issues.skipped)


# ----------------------------------------------------------------------------- EchoNet-Pediatric


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
    root = _require_root(root)
    if not 0 <= test_fold < folds:
        raise ValueError(f"test_fold must be in [0, {folds}), got {test_fold}")
    views = [views] if isinstance(views, str) else list(views)
    issues = _Issues(on_error)
    rows_by_view: list[tuple[str, Path, dict[str, str], int, str]] = []  # view, path, row, fold, accession
    tracings: dict[str, tuple[dict[str, set[int]], dict[str, set[str]]]] = {}
    for view in views:
        table = root / view / "FileList.csv"
        rows = _read_table(table, ["FileName", "EF", "Split"])
        tracing_file = root / view / "VolumeTracings.csv"
        if tracing_file.is_file():
            tracings[view] = _traced_frames(_read_table(tracing_file, ["FileName", "Frame"]))
        for row in rows:
            name = _with_avi(row["FileName"])
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
            labels = _labels(row, {"ef": "EF"}, required=True)
            meta: dict = {"population": "pediatric", "fold": fold}
            for key, column in (("age", "Age"), ("weight", "Weight"), ("height", "Height")):
                value = _number(row.get(column, ""), key)
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


# ----------------------------------------------------------------------------- MIMIC-IV-Echo


def _video_info(path: Path):
    from echojepa.io import video_info  # deferred: the io layer pulls in PyAV and pydicom

    return video_info(path)


def read_mimic(
    root: Path,
    *,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    probe_files: bool = True,
    on_error: str = "raise",
) -> DatasetIndex:
    """MIMIC-IV-Echo: `echo-record-list.csv` + DICOM tree, optional `labels.csv` and `view_labels.csv`.

    One record per listed cine; stills and Doppler spectra (found by probing the DICOM header) are
    excluded and counted in `skipped`. Split: `labels.csv`'s `split` column when present, else a hash of
    subject_id. `probe_files=False` skips the header probe (then no file is recognised as non-cine).
    """
    from echojepa.io.types import NotACineError, VideoReadError

    root = _require_root(root)
    hash_split("", split_fractions)  # validates the fractions before any work
    issues = _Issues(on_error)
    listing = root / "echo-record-list.csv"
    rows = _read_table(listing, ["subject_id", "study_id", "dicom_filepath"])

    study_labels: dict[str, dict[str, str]] = {}
    label_file = root / "labels.csv"
    if label_file.is_file():
        for row in _read_table(label_file, ["subject_id", "study_id"]):
            study_labels[row["study_id"]] = row
    views: dict[str, str] = {}
    view_file = root / "view_labels.csv"
    if view_file.is_file():
        for row in _read_table(view_file, ["dicom_filepath", "view"]):
            views[Path(row["dicom_filepath"]).as_posix()] = row["view"]

    records = []
    for row in rows:
        rel = Path(row["dicom_filepath"]).as_posix()
        path = root / rel
        subject, study = row["subject_id"], row["study_id"]
        label_row = study_labels.get(study, {})
        try:
            labels = _labels(label_row, {"ef": "lvef", "rvsp": "rvsp"}, required=False)
            split = (
                normalise_split(label_row["split"])
                if label_row.get("split")
                else hash_split(subject, split_fractions)
            )
        except ValueError as e:
            issues.bad(path, f"{label_file.name} (study {study}): {e}")
            continue
        if not path.is_file():
            issues.bad(path, f"listed in {listing.name} but the file is missing")
            continue
        meta: dict = {}
        if probe_files:
            try:
                info = _video_info(path)
            except NotACineError as e:
                issues.exclude(path, f"{NOT_A_CINE} (kind={e.kind})")
                continue
            except VideoReadError as e:
                issues.bad(path, e.reason)
                continue
            if info.kind != "cine":
                issues.exclude(path, f"{NOT_A_CINE} (kind={info.kind})")
                continue
            meta = {"kind": info.kind, "frames": info.frames, "fps": info.fps}
        records.append(
            Record(
                path=path,
                split=split,
                patient=subject,
                study=study,
                view=views.get(rel),
                labels=labels,
                meta=meta,
            )
        )
    records = _enforce_patient_splits(records, issues, unit="subject")
    return DatasetIndex("mimic", root, records, issues.skipped)


# ----------------------------------------------------------------------------- generic CSV


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
    table = root if root.is_file() else _require_root(root) / csv_name
    rows = _read_table(table, ["path"])
    base = table.parent
    hash_split("", split_fractions)
    issues = _Issues(on_error)
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
    records = _enforce_patient_splits(records, issues)
    return DatasetIndex("csv", table, records, issues.skipped)


# ----------------------------------------------------------------------------- registry

READERS: dict[str, Callable[..., DatasetIndex]] = {
    "echonet_dynamic": read_echonet_dynamic,
    "echonet_pediatric": read_echonet_pediatric,
    "mimic": read_mimic,
    "csv": read_csv_index,
}


def read_index(format: str, root: Path, **options) -> DatasetIndex:
    """Read a dataset index with the reader registered for `format` (see `READERS`)."""
    reader = READERS.get(format)
    if reader is None:
        raise ValueError(f"unknown dataset format {format!r}; valid formats: {sorted(READERS)}")
    accepted = [p for p in inspect.signature(reader).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"format {format!r} has no option(s) {unknown}; valid options: {accepted}")
    return reader(Path(root), **options)
