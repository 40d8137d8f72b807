"""Each reader reads back exactly what the EchoSynth writers wrote in its layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from echojepa.data.datasets import hash_split, pediatric_fold_split, read_index


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
