"""The MIMIC-IV-Echo reader: a DICOM tree listed in `echo-record-list.csv`, cines only.

Unlike the other readers it probes each DICOM header, to tell cines from stills and Doppler spectra;
those are expected exclusions, counted in `skipped` with a reason starting with `NOT_A_CINE`.
"""

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
from echojepa.data.datasets.tables import parse_labels, read_table, require_root
from echojepa.data.index import DatasetIndex, Record

# Reasons of expected exclusions (MIMIC stills / Doppler) start with this; they are not problems.
NOT_A_CINE = "not a cine"


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

    root = require_root(root)
    hash_split("", split_fractions)  # validates the fractions before any work
    issues = Issues(on_error)
    listing = root / "echo-record-list.csv"
    rows = read_table(listing, ["subject_id", "study_id", "dicom_filepath"])

    study_labels: dict[str, dict[str, str]] = {}
    label_file = root / "labels.csv"
    if label_file.is_file():
        for row in read_table(label_file, ["subject_id", "study_id"]):
            study_labels[row["study_id"]] = row
    views: dict[str, str] = {}
    view_file = root / "view_labels.csv"
    if view_file.is_file():
        for row in read_table(view_file, ["dicom_filepath", "view"]):
            views[Path(row["dicom_filepath"]).as_posix()] = row["view"]

    records = []
    for row in rows:
        rel = Path(row["dicom_filepath"]).as_posix()
        path = root / rel
        subject, study = row["subject_id"], row["study_id"]
        label_row = study_labels.get(study, {})
        try:
            labels = parse_labels(label_row, {"ef": "lvef", "rvsp": "rvsp"}, required=False)
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
    records = enforce_patient_splits(records, issues, unit="subject")
    return DatasetIndex("mimic", root, records, issues.skipped)
