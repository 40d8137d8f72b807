"""check_dataset: counts, label statistics, and each problem it must find."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from echojepa.data.check import check_dataset


def _row(name: str, ef: float = 60.0, split: str = "TRAIN") -> list:
    return [name, ef, 20.0, 50.0, 16, 16, 25, 3, split]


def test_good_dataset_is_ok_with_counts_and_label_stats(dynamic_root: Path) -> None:
    report = check_dataset("echonet_dynamic", dynamic_root)
    assert report.ok, report.problems
    assert report.counts == {"train": 2, "val": 1, "test": 1}
    ef = report.label_stats["ef"]
    assert ef.n == 4 and ef.min == 30.0 and ef.max == 70.0
    assert ef.mean == pytest.approx((60.0 + 45.5 + 70.0 + 30.0) / 4)
    assert ef.std == pytest.approx(statistics.pstdev([60.0, 45.5, 70.0, 30.0]))
    assert report.decoded


def test_report_json_round_trips(dynamic_root: Path) -> None:
    data = json.loads(check_dataset("echonet_dynamic", dynamic_root).dumps())
    assert data["ok"] is True and data["problems"] == []
    assert data["counts"] == {"train": 2, "val": 1, "test": 1}
    assert set(data["label_stats"]["ef"]) == {"n", "mean", "std", "min", "max"}


def test_undecodable_file_is_a_problem_naming_it(dynamic_root: Path) -> None:
    bad = dynamic_root / "Videos" / "0X3.avi"
    bad.write_bytes(b"RIFF not really an avi")
    report = check_dataset("echonet_dynamic", dynamic_root)
    assert not report.ok
    assert [file for file, _ in report.problems] == [str(bad)]


def test_no_decode_skips_opening_files(dynamic_root: Path) -> None:
    (dynamic_root / "Videos" / "0X3.avi").write_bytes(b"RIFF not really an avi")
    report = check_dataset("echonet_dynamic", dynamic_root, decode=False)
    assert report.ok and not report.decoded


def test_reader_problems_are_collected_not_raised(dynamic_root: Path, dynamic_filelist) -> None:
    dynamic_filelist([_row("0X1"), _row("0X2", ef=140.0), _row("0X3", split="holdout"), _row("0X5")])
    report = check_dataset("echonet_dynamic", dynamic_root, decode=False)
    reasons = {Path(f).name: r for f, r in report.problems}
    assert set(reasons) == {"0X2.avi", "0X3.avi", "0X5.avi"}
    assert "outside the range" in reasons["0X2.avi"]
    assert "unknown split" in reasons["0X3.avi"]
    assert "missing" in reasons["0X5.avi"]
    assert report.counts["train"] == 1


def test_duplicate_listing_is_a_problem(dynamic_root: Path, dynamic_filelist) -> None:
    dynamic_filelist([_row("0X1"), _row("0X1.avi"), _row("0X2")])
    report = check_dataset("echonet_dynamic", dynamic_root, decode=False)
    assert {Path(f).name for f, r in report.problems if "duplicate" in r} == {"0X1.avi"}


def test_unknown_view_is_a_problem_only_when_views_are_checked(tmp_path: Path, table, avi) -> None:
    avi(tmp_path / "a.avi")
    table(tmp_path / "index.csv", ["path", "label", "split", "view"], [["a.avi", 1, "train", "A9C"]])
    assert any("unknown view 'A9C'" in r for _, r in check_dataset("csv", tmp_path).problems)
    assert check_dataset("csv", tmp_path, known_views=None).ok


def test_patient_in_two_splits_is_a_problem(tmp_path: Path, table, avi) -> None:
    avi(tmp_path / "a.avi")
    avi(tmp_path / "b.avi")
    table(
        tmp_path / "index.csv",
        ["path", "label", "split", "patient"],
        [["a.avi", 1, "train", "p"], ["b.avi", 2, "val", "p"]],
    )
    report = check_dataset("csv", tmp_path)
    assert len(report.problems) == 2 and all("several splits" in r for _, r in report.problems)


def test_class_labels_are_counted(tmp_path: Path, table, avi) -> None:
    for n in "abc":
        avi(tmp_path / f"{n}.avi")
    table(
        tmp_path / "index.csv",
        ["path", "label", "split"],
        [["a.avi", "A4C", "train"], ["b.avi", "A4C", "train"], ["c.avi", "PLAX", "test"]],
    )
    report = check_dataset("csv", tmp_path)
    assert report.class_counts == {"label": {"A4C": 2, "PLAX": 1}} and report.label_stats == {}


def test_missing_table_is_a_problem_and_missing_root_raises(tmp_path: Path) -> None:
    report = check_dataset("echonet_dynamic", tmp_path)
    assert not report.ok and report.problems[0][0].endswith("FileList.csv")
    with pytest.raises(FileNotFoundError):
        check_dataset("echonet_dynamic", tmp_path / "absent")


def test_workers_give_the_same_report(dynamic_root: Path) -> None:
    (dynamic_root / "Videos" / "0X3.avi").write_bytes(b"junk")
    one = check_dataset("echonet_dynamic", dynamic_root).to_json()
    two = check_dataset("echonet_dynamic", dynamic_root, workers=2).to_json()
    assert one == two and not one["ok"]


@pytest.mark.parametrize(
    ("fmt", "folder"),
    [
        ("echonet_dynamic", "echonet_dynamic"),
        ("echonet_pediatric", "echonet_pediatric"),
        ("mimic", "mimic_iv_echo"),
    ],
)
def test_echosynth_datasets_pass_the_check(synth_root: Path, fmt: str, folder: str) -> None:
    report = check_dataset(fmt, synth_root / folder)
    assert report.ok, report.problems
    assert sum(report.counts.values()) > 0 and report.label_stats["ef"].n > 0
    if fmt == "mimic":
        assert report.excluded and report.label_stats["rvsp"].n > 0


def test_a_listing_with_a_header_and_no_rows_is_a_problem_naming_it(
    dynamic_root: Path, dynamic_filelist, tmp_path: Path, table
) -> None:
    dynamic_filelist([])
    report = check_dataset("echonet_dynamic", dynamic_root)
    assert report.problems == [(str(dynamic_root / "FileList.csv"), report.problems[0][1])]
    assert "no rows" in report.problems[0][1]
    index = table(tmp_path / "csv" / "index.csv", ["path", "label"], [])
    assert [f for f, _ in check_dataset("csv", index.parent).problems] == [str(index)]


def test_a_listing_that_is_not_utf8_is_a_problem_naming_it(dynamic_root: Path) -> None:
    listing = dynamic_root / "FileList.csv"
    text = listing.read_text().replace("0X3,70.0", "0X3,7\u00e9")  # a Latin-1 editor's stray character
    listing.write_bytes(text.encode("latin-1"))
    report = check_dataset("echonet_dynamic", dynamic_root)
    assert [f for f, _ in report.problems] == [str(listing)]
    assert "not UTF-8" in report.problems[0][1] and "0xe9" in report.problems[0][1]


def test_esv_larger_than_edv_is_a_problem(dynamic_root: Path, dynamic_filelist) -> None:
    dynamic_filelist([_row("0X1"), ["0X2", 60.0, 55.0, 50.0, 16, 16, 25, 3, "TRAIN"]])
    report = check_dataset("echonet_dynamic", dynamic_root, decode=False)
    assert [(Path(f).name, "esv=55" in r and "edv=50" in r) for f, r in report.problems] == [
        ("0X2.avi", True)
    ]


def test_file_problems_are_not_hidden_behind_label_problems(dynamic_root: Path, dynamic_filelist) -> None:
    dynamic_filelist([_row("0X1"), _row("0X2", ef=140.0), _row("0X3", split="holdout")])
    (dynamic_root / "Videos" / "0X2.avi").unlink()
    (dynamic_root / "Videos" / "0X3.avi").write_bytes(b"RIFF not really an avi")
    reasons: dict[str, list[str]] = {}
    for f, r in check_dataset("echonet_dynamic", dynamic_root).problems:
        reasons.setdefault(Path(f).name, []).append(r)
    assert sorted(reasons) == ["0X2.avi", "0X3.avi"]
    assert "outside the range" in reasons["0X2.avi"][0] and reasons["0X2.avi"][1] == "the file is missing"
    assert "unknown split" in reasons["0X3.avi"][0] and len(reasons["0X3.avi"]) == 2  # and undecodable
