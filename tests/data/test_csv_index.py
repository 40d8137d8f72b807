"""The generic CSV reader: numeric and class labels, paths, hashed splits, leaks across splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from echojepa.data.datasets import DatasetError, hash_split, read_index


def test_csv_numeric_and_class_labels_relative_and_absolute_paths(tmp_path: Path, table, avi) -> None:
    a = avi(tmp_path / "clips" / "a.avi")
    b = avi(tmp_path / "elsewhere" / "b.avi")
    table(
        tmp_path / "index.csv",
        ["path", "label", "split", "patient"],
        [["clips/a.avi", "61.5", "train", "p1"], [str(b), "A4C", "TEST", "p2"]],
    )
    index = read_index("csv", tmp_path)
    recs = {r.path.name: r for r in index.records}
    assert recs["a.avi"].path == a and recs["a.avi"].labels == {"label": 61.5}
    assert recs["b.avi"].labels == {"label": "A4C"} and recs["b.avi"].split == "test"


def test_csv_without_split_hashes_by_patient(tmp_path: Path, table) -> None:
    rows = []
    for p in range(20):
        for c in range(3):
            (tmp_path / f"{p}_{c}.avi").write_bytes(b"x")
            rows.append([f"{p}_{c}.avi", 1.0, f"patient{p}"])
    table(tmp_path / "list.csv", ["path", "label", "patient"], rows)
    index = read_index("csv", tmp_path / "list.csv")
    for p in range(20):
        splits = {r.split for r in index.records if r.patient == f"patient{p}"}
        assert splits == {hash_split(f"patient{p}")}


def test_csv_without_patient_hashes_by_path(tmp_path: Path, table) -> None:
    (tmp_path / "a.avi").write_bytes(b"x")
    table(tmp_path / "index.csv", ["path", "label"], [["a.avi", 3]])
    rec = read_index("csv", tmp_path).records[0]
    assert rec.patient == "a.avi" and rec.split == hash_split("a.avi")


def test_csv_patient_in_two_splits_is_a_leak_error(tmp_path: Path, table) -> None:
    for n in ("a", "b"):
        (tmp_path / f"{n}.avi").write_bytes(b"x")
    table(
        tmp_path / "index.csv",
        ["path", "label", "split", "patient"],
        [["a.avi", 1, "train", "p"], ["b.avi", 1, "test", "p"]],
    )
    with pytest.raises(DatasetError, match="several splits"):
        read_index("csv", tmp_path)
