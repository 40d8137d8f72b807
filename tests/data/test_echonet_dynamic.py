"""The EchoNet-Dynamic reader: file names, case-insensitive splits, labels, traced frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from echojepa.data.datasets import DatasetError, read_echonet_dynamic


def test_dynamic_appends_avi_only_when_missing(dynamic_root: Path) -> None:
    index = read_echonet_dynamic(dynamic_root)
    names = sorted(r.path.name for r in index.records)
    assert names == ["0X1.avi", "0X2.avi", "0X3.avi", "0X4.avi"]
    assert all(r.path.is_file() for r in index.records)


def test_dynamic_split_is_case_insensitive(dynamic_root: Path) -> None:
    index = read_echonet_dynamic(dynamic_root)
    assert {r.path.stem: r.split for r in index.records} == {
        "0X1": "train",
        "0X2": "train",
        "0X3": "val",
        "0X4": "test",
    }
    assert index.counts() == {"train": 2, "val": 1, "test": 1}


def test_dynamic_labels_patient_and_view_per_video(dynamic_root: Path) -> None:
    rec = {r.path.stem: r for r in read_echonet_dynamic(dynamic_root).records}["0X2"]
    assert rec.labels == {"ef": 45.5, "esv": 30.0, "edv": 55.0}
    assert rec.patient == rec.study == "0X2"
    assert rec.view == "A4C"
    assert rec.meta["fps"] == 25 and rec.meta["frames"] == 3


def test_dynamic_traced_frames_from_tracings_with_avi_names(dynamic_root: Path) -> None:
    recs = {r.path.stem: r for r in read_echonet_dynamic(dynamic_root).records}
    assert recs["0X1"].meta["traced_frames"] == [46, 61]
    assert "traced_frames" not in recs["0X2"].meta


def test_dynamic_tracings_are_optional(dynamic_root: Path) -> None:
    (dynamic_root / "VolumeTracings.csv").unlink()
    index = read_echonet_dynamic(dynamic_root)
    assert len(index) == 4 and all("traced_frames" not in r.meta for r in index.records)


def test_dynamic_missing_filelist_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="FileList.csv: file not found"):
        read_echonet_dynamic(tmp_path)
