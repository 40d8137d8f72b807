"""The EchoNet-Pediatric reader: the fold convention, exams grouped by accession, meta and tracings."""

from __future__ import annotations

from pathlib import Path

import pytest

from echojepa.data.datasets import DatasetError, pediatric_fold_split, read_echonet_pediatric

PEDS_HEADER = ["FileName", "EF", "Sex", "Age", "Weight", "Height", "Split"]


@pytest.fixture
def peds(tmp_path: Path, table):
    """Factory: peds(a4c_rows, psax_rows) -> root of an EchoNet-Pediatric layout (placeholder videos)."""

    def make(a4c_rows: list[list], psax_rows: list[list]) -> Path:
        root = tmp_path / "peds"
        for view, rows in (("A4C", a4c_rows), ("PSAX", psax_rows)):
            table(root / view / "FileList.csv", PEDS_HEADER, rows)
            (root / view / "Videos").mkdir(parents=True, exist_ok=True)
            for row in rows:
                (root / view / "Videos" / row[0]).write_bytes(b"placeholder: readers never decode")
        return root

    return make


@pytest.mark.parametrize(("test_fold", "val_fold"), [(0, 1), (3, 4), (9, 0)])
def test_pediatric_fold_convention(test_fold: int, val_fold: int) -> None:
    splits = [pediatric_fold_split(f, test_fold) for f in range(10)]
    assert splits[test_fold] == "test" and splits[val_fold] == "val"
    assert splits.count("train") == 8


def test_pediatric_reader_applies_test_fold_option(peds) -> None:
    rows = [[f"CR1-ACC{f}-0001.avi", 60, "M", 5, 20, 110, f] for f in range(10)]
    root = peds(rows, [])
    index = read_echonet_pediatric(root, test_fold=9)
    by_fold = {r.meta["fold"]: r.split for r in index.records}
    assert by_fold[9] == "test" and by_fold[0] == "val"
    assert sorted(f for f, s in by_fold.items() if s == "train") == list(range(1, 9))


def test_pediatric_groups_views_of_one_exam_by_accession(peds) -> None:
    root = peds(
        [
            ["CR1-ACC7-000039.avi", 55, "F", 4.5, 17.2, 104, 2],
            ["CR2-ACC8-000001.avi", 62, "M", 9, 30, 130, 5],
        ],
        [["CR3-ACC7-000040.avi", 55, "F", 4.5, 17.2, 104, 2]],
    )
    index = read_echonet_pediatric(root)
    acc7 = [r for r in index.records if r.patient == "ACC7"]
    assert sorted(r.view for r in acc7) == ["A4C", "PSAX"]
    assert {r.study for r in acc7} == {"ACC7"} and len({r.split for r in acc7}) == 1
    assert len(index) == 3


def test_pediatric_accession_in_two_folds_raises(peds) -> None:
    root = peds([["CR1-ACC7-01.avi", 55, "F", 4, 17, 104, 2]], [["CR3-ACC7-02.avi", 55, "F", 4, 17, 104, 3]])
    with pytest.raises(DatasetError, match=r"ACC7 is in several folds \[2, 3\]"):
        read_echonet_pediatric(root)


def test_pediatric_accession_in_two_folds_skips_every_clip_of_it(peds) -> None:
    root = peds(
        [["CR1-ACC7-01.avi", 55, "F", 4, 17, 104, 2], ["CR1-ACC8-01.avi", 60, "F", 4, 17, 104, 2]],
        [["CR3-ACC7-02.avi", 55, "F", 4, 17, 104, 3]],
    )
    index = read_echonet_pediatric(root, on_error="skip")
    assert [r.patient for r in index.records] == ["ACC8"]
    assert len(index.skipped) == 2 and all("would leak" in reason for _, reason in index.skipped)


def test_pediatric_meta_numbers_and_population(peds) -> None:
    root = peds([["CR1-ACC7-01.avi", 55.5, "f", 4.5, "", 104, 2]], [])
    rec = read_echonet_pediatric(root).records[0]
    assert rec.labels == {"ef": 55.5}
    assert rec.meta["population"] == "pediatric"
    assert rec.meta["age"] == 4.5 and rec.meta["height"] == 104.0 and "weight" not in rec.meta
    assert rec.meta["sex"] == "F"


def test_pediatric_tracing_frames_may_be_strings(peds, table) -> None:
    root = peds([["CR1-ACC7-01.avi", 55, "F", 4, 17, 104, 2]], [])
    table(
        root / "A4C" / "VolumeTracings.csv",
        ["FileName", "X", "Y", "Frame"],
        [
            ["CR1-ACC7-01.avi", 1, 2, 12],
            ["CR1-ACC7-01.avi", 3, 4, 12],
            ["CR1-ACC7-01.avi", 5, 6, "No Systolic"],
        ],
    )
    rec = read_echonet_pediatric(root, views=["A4C"]).records[0]
    assert rec.meta["traced_frames"] == [12]
    assert rec.meta["tracing_notes"] == ["No Systolic"]


def test_pediatric_views_option_reads_only_those_folders(peds) -> None:
    root = peds([["CR1-ACC7-01.avi", 55, "F", 4, 17, 104, 2]], [])
    (root / "PSAX" / "FileList.csv").unlink()
    assert [r.view for r in read_echonet_pediatric(root, views=("A4C",)).records] == ["A4C"]
    with pytest.raises(DatasetError, match="PSAX"):
        read_echonet_pediatric(root)
