"""Fixtures of the data tests: tiny files in real layouts, and one EchoSynth world per session."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def tiny_frames(frames: int = 3, size: int = 16, seed: int = 0) -> np.ndarray:
    """[T, H, W, 3] uint8 moving gradient: distinct frames that survive MJPG."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(size, size), dtype=np.uint8)
    return np.stack([np.repeat(np.roll(base, t, axis=1)[..., None], 3, axis=-1) for t in range(frames)])


def write_avi(path: Path, frames: int = 3, size: int = 16, fps: float = 25.0) -> Path:
    from echojepa.io.video import write_video

    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, tiny_frames(frames, size), fps)
    return path


@pytest.fixture
def avi() -> Callable[..., Path]:
    """Factory: avi(path, frames=3, size=16, fps=25.0) writes a tiny MJPG AVI."""
    return write_avi


@pytest.fixture
def table() -> Callable[..., Path]:
    """Factory: table(path, header, rows) writes a CSV."""
    return write_csv


DYNAMIC_HEADER = [
    "FileName",
    "EF",
    "ESV",
    "EDV",
    "FrameHeight",
    "FrameWidth",
    "FPS",
    "NumberOfFrames",
    "Split",
]


@pytest.fixture
def dynamic_root(tmp_path: Path) -> Path:
    """EchoNet-Dynamic layout: 4 decodable videos, released-style names (no .avi), mixed-case splits."""
    root = tmp_path / "dynamic"
    rows = [
        ["0X1", 60.0, 20.0, 50.0, 16, 16, 25, 3, "TRAIN"],
        ["0X2.avi", 45.5, 30.0, 55.0, 16, 16, 25, 3, "train"],
        ["0X3", 70.0, 15.0, 50.0, 16, 16, 25, 3, "Val"],
        ["0X4", 30.0, 40.0, 57.0, 16, 16, 25, 3, "TEST"],
    ]
    write_csv(root / "FileList.csv", DYNAMIC_HEADER, rows)
    for name in ("0X1", "0X2", "0X3", "0X4"):
        write_avi(root / "Videos" / f"{name}.avi")
    write_csv(
        root / "VolumeTracings.csv",
        ["FileName", "X1", "Y1", "X2", "Y2", "Frame"],
        [
            ["0X1.avi", 1, 2, 3, 4, 46],
            ["0X1.avi", 1, 2, 3, 4, 46],
            ["0X1.avi", 1, 2, 3, 4, 61],
            ["0X9.avi", 1, 2, 3, 4, 5],
        ],
    )
    return root


@pytest.fixture(scope="session")
def synth_root(synth_world: Path) -> Path:
    """The EchoSynth tiny preset (the session-wide world of tests/conftest.py)."""
    return synth_world


@pytest.fixture
def dynamic_filelist(dynamic_root: Path) -> Callable[[list[list]], Path]:
    """Factory: rewrite the FileList.csv of `dynamic_root` with these rows (DYNAMIC_HEADER columns)."""

    def rewrite(rows: list[list]) -> Path:
        return write_csv(dynamic_root / "FileList.csv", DYNAMIC_HEADER, rows)

    return rewrite


def write_dicom_file(path: Path, kind: str = "cine", frames: int = 3, size: int = 16, **kwargs) -> Path:
    from echojepa.io.dicom_writer import write_dicom

    path.parent.mkdir(parents=True, exist_ok=True)
    n = 1 if kind == "still" else frames
    write_dicom(path, tiny_frames(n, size), 30.0, kind=kind, **kwargs)
    return path


@pytest.fixture
def mimic_dicom() -> Callable[..., Path]:
    """Factory: mimic_dicom(path, kind="cine"|"still"|"doppler", frames=3, size=16, **write_dicom kwargs)."""
    return write_dicom_file


MIMIC_LIST_HEADER = ["subject_id", "study_id", "acquisition_datetime", "dicom_filepath"]


@pytest.fixture
def mimic_root(tmp_path: Path) -> Path:
    """MIMIC-IV-Echo layout: subject 1 (two studies: 3 cines + 1 still + 1 Doppler), subject 2 (1 cine)."""
    root = tmp_path / "mimic"
    files = {
        ("10000001", "50000001"): ["cine", "cine", "still"],
        ("10000001", "50000002"): ["cine", "doppler"],
        ("10000002", "50000003"): ["cine"],
    }
    rows = []
    for (subject, study), kinds in files.items():
        for i, kind in enumerate(kinds, start=1):
            rel = f"files/p{subject[:2]}/p{subject}/s{study}/{study}_{i:04d}.dcm"
            write_dicom_file(root / rel, kind=kind)
            rows.append([subject, study, "2180-01-01 10:00:00", rel])
    write_csv(root / "echo-record-list.csv", MIMIC_LIST_HEADER, rows)
    write_csv(
        root / "labels.csv",
        ["subject_id", "study_id", "lvef", "rvsp"],
        [
            ["10000001", "50000001", "55", ""],
            ["10000001", "50000002", "", "42.5"],
            ["10000002", "50000003", "35", "60"],
        ],
    )
    write_csv(
        root / "view_labels.csv",
        ["dicom_filepath", "view"],
        [
            ["files/p10/p10000001/s50000001/50000001_0001.dcm", "A4C"],
            ["files/p10/p10000002/s50000003/50000003_0001.dcm", "PLAX"],
        ],
    )
    return root
