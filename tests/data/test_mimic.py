"""The MIMIC-IV-Echo reader: non-cines excluded, labels by study, views, hashed or listed splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from echojepa.data.datasets import DatasetError, hash_split, read_index


def test_mimic_excludes_and_counts_non_cines(mimic_root: Path) -> None:
    index = read_index("mimic", mimic_root)
    assert len(index) == 4
    assert sorted(Path(f).name for f, _ in index.skipped) == ["50000001_0003.dcm", "50000002_0002.dcm"]
    assert sorted(reason for _, reason in index.skipped) == [
        "not a cine (kind=doppler)",
        "not a cine (kind=still)",
    ]
    assert all(r.meta["kind"] == "cine" and r.meta["frames"] == 3 for r in index.records)


def test_mimic_labels_by_study_leave_empty_values_out(mimic_root: Path) -> None:
    labels = {(r.study, r.path.name): r.labels for r in read_index("mimic", mimic_root).records}
    assert labels[("50000001", "50000001_0001.dcm")] == {"ef": 55.0}
    assert labels[("50000002", "50000002_0001.dcm")] == {"rvsp": 42.5}
    assert labels[("50000003", "50000003_0001.dcm")] == {"ef": 35.0, "rvsp": 60.0}


def test_mimic_patient_study_view_and_no_dates_in_meta(mimic_root: Path) -> None:
    recs = {r.path.name: r for r in read_index("mimic", mimic_root).records}
    assert recs["50000001_0002.dcm"].patient == "10000001" and recs["50000001_0002.dcm"].study == "50000001"
    assert recs["50000001_0001.dcm"].view == "A4C" and recs["50000003_0001.dcm"].view == "PLAX"
    assert recs["50000001_0002.dcm"].view is None
    assert not any("2180" in str(r.meta) for r in recs.values())


def test_mimic_hash_split_keeps_a_subject_together(mimic_root: Path) -> None:
    index = read_index("mimic", mimic_root)
    for r in index.records:
        assert r.split == hash_split(r.patient)
    forced = read_index("mimic", mimic_root, split_fractions=(0.0, 1.0, 0.0))
    assert {r.split for r in forced.records} == {"val"}


def test_mimic_split_column_wins_and_a_subject_split_across_studies_is_an_error(
    mimic_root: Path, table
) -> None:
    header = ["subject_id", "study_id", "lvef", "rvsp", "split"]
    table(
        mimic_root / "labels.csv",
        header,
        [
            ["10000001", "50000001", "55", "", "test"],
            ["10000001", "50000002", "", "", "TEST"],
            ["10000002", "50000003", "", "", "train"],
        ],
    )
    assert {r.patient: r.split for r in read_index("mimic", mimic_root).records} == {
        "10000001": "test",
        "10000002": "train",
    }
    table(
        mimic_root / "labels.csv",
        header,
        [["10000001", "50000001", "55", "", "test"], ["10000001", "50000002", "", "", "val"]],
    )
    with pytest.raises(DatasetError, match="subject 10000001 is in several splits"):
        read_index("mimic", mimic_root)
