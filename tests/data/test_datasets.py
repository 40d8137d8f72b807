"""Index readers: layout conventions of each format, patient-level splits, the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from echojepa.data.datasets import (
    DatasetError,
    hash_split,
    pediatric_fold_split,
    read_echonet_dynamic,
    read_echonet_pediatric,
    read_index,
)

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


# ----------------------------------------------------------------------------- EchoNet-Dynamic


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


# ----------------------------------------------------------------------------- EchoNet-Pediatric


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


# ----------------------------------------------------------------------------- generic CSV


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


# ----------------------------------------------------------------------------- splits and registry


def test_hash_split_is_deterministic_and_near_fractions() -> None:
    keys = [f"subject{i}" for i in range(3000)]
    splits = [hash_split(k) for k in keys]
    assert splits == [hash_split(k) for k in keys]
    assert abs(splits.count("train") / 3000 - 0.8) < 0.03
    assert abs(splits.count("val") / 3000 - 0.1) < 0.02
    assert {hash_split(k, (0.0, 0.0, 1.0)) for k in keys[:50]} == {"test"}


def test_hash_split_rejects_fractions_not_summing_to_one() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        hash_split("x", (0.8, 0.1, 0.2))


def test_read_index_unknown_format_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="echonet_dynamic.*echonet_pediatric.*mimic"):
        read_index("camus", tmp_path)


def test_read_index_unknown_option_names_valid_ones(dynamic_root: Path) -> None:
    with pytest.raises(ValueError, match="test_fold.*valid options.*on_error"):
        read_index("echonet_dynamic", dynamic_root, test_fold=3)


def test_read_index_dispatches_to_reader(dynamic_root: Path) -> None:
    index = read_index("echonet_dynamic", dynamic_root)
    assert index.format == "echonet_dynamic" and len(index) == 4


# ----------------------------------------------------------------------------- MIMIC-IV-Echo


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


# ----------------------------------------------------------------------------- EchoSynth round trips


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("dataset", ["echonet_dynamic", "echonet_dynamic_siteB"])
def test_dynamic_round_trips_echosynth(synth_root: Path, dataset: str) -> None:
    root = synth_root / dataset
    rows = {r["FileName"]: r for r in _csv_rows(root / "FileList.csv")}
    index = read_index("echonet_dynamic", root)
    assert index.skipped == [] and len(index) == len(rows)
    for rec in index.records:
        row = rows[rec.path.stem] if rec.path.stem in rows else rows[rec.path.name]
        assert rec.labels == {"ef": float(row["EF"]), "esv": float(row["ESV"]), "edv": float(row["EDV"])}
        assert rec.split == row["Split"].lower()
        assert len(rec.meta["traced_frames"]) == 2
    assert len({r.patient for r in index.records}) == len(index)
    manifest = json.loads((synth_root / "manifest.json").read_text())
    assert {k: v for k, v in index.counts().items() if v} == {
        k.lower(): v for k, v in manifest["counts"][dataset].items()
    }


def test_pediatric_round_trips_echosynth(synth_root: Path) -> None:
    root = synth_root / "echonet_pediatric"
    rows = {(v, r["FileName"]): r for v in ("A4C", "PSAX") for r in _csv_rows(root / v / "FileList.csv")}
    for test_fold in (0, 7):
        index = read_index("echonet_pediatric", root, test_fold=test_fold)
        assert index.skipped == [] and len(index) == len(rows)
        for rec in index.records:
            row = rows[(rec.view, rec.path.name)]
            assert rec.labels == {"ef": float(row["EF"])}
            assert rec.split == pediatric_fold_split(int(row["Split"]), test_fold)
            assert rec.patient == rec.path.stem.split("-")[1] and rec.meta["population"] == "pediatric"
        by_exam: dict[str, set[str]] = {}
        for rec in index.records:
            by_exam.setdefault(rec.patient, set()).add(rec.split)
        assert all(len(s) == 1 for s in by_exam.values())


def test_mimic_round_trips_echosynth(synth_root: Path) -> None:
    root = synth_root / "mimic_iv_echo"
    listed = _csv_rows(root / "echo-record-list.csv")
    labels = {r["study_id"]: r for r in _csv_rows(root / "labels.csv")}
    views = {r["dicom_filepath"]: r["view"] for r in _csv_rows(root / "view_labels.csv")}
    manifest = json.loads((synth_root / "manifest.json").read_text())["counts"]["mimic_iv_echo"]
    index = read_index("mimic", root)
    assert len(index) == manifest["cines"] and len(index) + len(index.skipped) == len(listed)
    assert len(index.skipped) == manifest["files"] - manifest["cines"] > 0
    assert all(reason.startswith("not a cine") for _, reason in index.skipped)
    for rec in index.records:
        row = labels[rec.study]
        assert rec.labels == {"ef": float(row["lvef"]), "rvsp": float(row["rvsp"])}
        assert rec.view == views[rec.path.relative_to(root).as_posix()]
        assert rec.split == hash_split(rec.patient)
    assert "CANARY" not in repr(index)  # the synthetic identifiers never reach the index
