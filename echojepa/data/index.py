"""The dataset index: one row per video file, whatever format it came from.

Every reader (EchoNet-Dynamic, EchoNet-Pediatric, MIMIC-IV-Echo, generic CSV, EchoSynth) produces a
`DatasetIndex`; everything downstream (clip sampling, DataModules, probes) reads only this.
Splits are always assigned per patient/exam, never per clip.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")


@dataclass
class Record:
    """One video file and everything known about it."""

    path: Path  # absolute path to the video file (AVI/MP4/DICOM)
    split: str  # "train" | "val" | "test"
    patient: str  # patient id (or exam/accession for datasets without patient ids): the split unit
    study: str  # study/exam id: groups the views of one examination (multi-view probes)
    view: str | None = None  # view label when known ("A4C", "PSAX", ...)
    labels: dict[str, float | str] = field(default_factory=dict)  # e.g. {"ef": 61.2, "rvsp": 34.0}
    meta: dict = field(default_factory=dict)  # non-identifying extras (site, population, fps, ...)


@dataclass
class DatasetIndex:
    """All records of one dataset plus the files that were skipped, each with its reason."""

    format: str
    root: Path
    records: list[Record]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def split(self, name: str) -> list[Record]:
        return [r for r in self.records if r.split == name]

    def counts(self) -> dict[str, int]:
        c = Counter(r.split for r in self.records)
        return {s: c.get(s, 0) for s in SPLITS}

    def __len__(self) -> int:
        return len(self.records)
