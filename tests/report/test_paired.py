"""Paired comparisons from predictions CSVs: alignment by item id, and every refusal."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from echojepa.metrics import regression_metrics
from echojepa.report.paired import Pairing, PairingError, compare_two, read_predictions
from echojepa.report.records import load_records

from .helpers import make_record, record_path, write_record


def _record(store: Path, backbone: str, rows: list[tuple], seed: int = 0, **change) -> dict:
    """A record whose metrics come from rows (id, patient, target, prediction), CSV beside it."""
    target = np.array([r[2] for r in rows], dtype=float)
    pred = np.array([r[3] for r in rows], dtype=float)
    record = make_record(backbone, "lvef", "standard", "internal", regression_metrics(pred, target), seed)
    record.update(change)
    path = record_path(store, record).with_suffix(".predictions.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "patient", "target", "prediction"])
        w.writerows(rows)
    record["predictions_csv"] = path.name
    write_record(store, record)
    return record


def _loaded(store: Path, backbone: str) -> list[dict]:
    return [r for r in load_records(store) if r["backbone"] == backbone]


def _compare(store: Path, **kw):
    """echojepa vs echomae on MAE, as stored."""
    return compare_two(_loaded(store, "echojepa"), _loaded(store, "echomae"), "mae", Pairing(store), **kw)


def _rows(n: int = 12, noise: float = 1.0, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    return [(f"r{i}", f"p{i // 2}", 40.0 + i, round(40.0 + i + noise * rng.normal(), 4)) for i in range(n)]


def test_predictions_are_aligned_by_item_id_not_by_row_order(tmp_path: Path) -> None:
    rows = _rows()
    _record(tmp_path, "echojepa", rows)
    _record(tmp_path, "echomae", list(reversed(rows)))  # same predictions, other order
    result = compare_two(
        _loaded(tmp_path, "echojepa"), _loaded(tmp_path, "echomae"), "mae", Pairing(tmp_path)
    )
    assert result.result.difference == 0.0 and result.result.ci == (0.0, 0.0)
    assert not result.result.excludes_zero


def test_runs_on_different_test_items_are_refused_naming_both_files(tmp_path: Path) -> None:
    rows = _rows()
    _record(tmp_path, "echojepa", rows)
    _record(tmp_path, "echomae", [("other", *r[1:]) if i == 0 else r for i, r in enumerate(rows)])
    with pytest.raises(PairingError, match=r"test items differ .*echojepa.*echomae.*1 only in the first"):
        _compare(tmp_path)


def test_common_only_compares_the_shared_items_and_counts_the_rest(tmp_path: Path) -> None:
    rows = _rows()
    _record(tmp_path, "echojepa", rows)
    _record(tmp_path, "echomae", rows[:10])
    got = compare_two(
        _loaded(tmp_path, "echojepa"),
        _loaded(tmp_path, "echomae"),
        "mae",
        Pairing(tmp_path),
        common_only=True,
    )
    assert got.set_aside == 2 and got.result.n_items == 10


def test_an_item_with_another_patient_or_target_is_refused(tmp_path: Path) -> None:
    rows = _rows()
    other_patient = [(r[0], "px", *r[2:]) if i == 3 else r for i, r in enumerate(rows)]
    other_target = [(*r[:2], r[2] + 1.0, r[3]) if i == 3 else r for i, r in enumerate(rows)]
    for folder, changed, reason in (
        ("a", other_patient, "belongs to patient"),
        ("b", other_target, "targets"),
    ):
        _record(tmp_path / folder, "echojepa", rows)
        _record(tmp_path / folder, "echomae", changed)
        with pytest.raises(PairingError, match=reason):
            _compare(tmp_path / folder)


def test_a_csv_that_does_not_reproduce_its_record_is_refused(tmp_path: Path) -> None:
    rows = _rows()
    _record(tmp_path, "echojepa", rows)
    record = _record(tmp_path, "echomae", rows)
    record["metrics"]["mae"]["value"] = 9.0  # the table would show 9.0; the CSV says otherwise
    write_record(tmp_path, record)
    for path in (tmp_path / "records").rglob("*.json"):
        if "echomae" in str(path) and '"value": 9.0' not in path.read_text():
            path.unlink()
    with pytest.raises(PairingError, match="does not reproduce its record's mae"):
        _compare(tmp_path)


def test_seeds_must_match_and_are_paired(tmp_path: Path) -> None:
    _record(tmp_path, "echojepa", _rows(seed=0), seed=0)
    _record(tmp_path, "echojepa", _rows(seed=1), seed=1)
    _record(tmp_path, "echomae", _rows(seed=2), seed=0)
    with pytest.raises(PairingError, match="seeds differ"):
        _compare(tmp_path)
    _record(tmp_path, "echomae", _rows(seed=3), seed=1)
    got = _compare(tmp_path)
    assert got.result.n_seeds == 2


def test_a_record_without_predictions_or_with_a_missing_csv(tmp_path: Path) -> None:
    write_record(tmp_path, make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0}))
    write_record(
        tmp_path,
        make_record("echomae", "lvef", "standard", "internal", {"mae": 6.0}, predictions_csv="gone.csv"),
    )
    jepa, mae = _loaded(tmp_path, "echojepa"), _loaded(tmp_path, "echomae")
    with pytest.raises(PairingError, match="has no predictions CSV"):
        compare_two(jepa, mae, "mae", Pairing(tmp_path))
    with pytest.raises(FileNotFoundError, match="gone.csv"):
        Pairing(tmp_path).predictions(mae[0])
    with pytest.raises(PairingError, match="gone.csv"):
        Pairing(tmp_path, missing="skip").predictions(mae[0])


def test_a_csv_without_patients_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,target,prediction\nr0,1,2\n")
    with pytest.raises(ValueError, match=r"p\.csv.*'patient'"):
        read_predictions(path)
    path.write_text("id,patient,target,prediction\nr0,a,1,2\nr0,b,1,2\n")
    with pytest.raises(ValueError, match="ids repeat"):
        read_predictions(path)


def test_a_tie_left_by_rounded_probabilities_goes_to_the_class_the_run_predicted(tmp_path: Path) -> None:
    # the science study's 1 % view CSV: two classes at 0.399301 after the CSV's 6 digits, PSAX predicted
    path = tmp_path / "p.csv"
    path.write_text(
        "id,patient,target,prediction,prob_A4C,prob_PLAX,prob_PSAX\n"
        "r0,a,PSAX,PSAX,0.201398,0.399301,0.399301\n"
        "r1,b,A4C,A4C,0.9,0.05,0.05\n"
    )
    p = read_predictions(path)
    assert p.output.argmax(axis=1).tolist() == [2, 0]
    assert p.output[1].tolist() == [0.9, 0.05, 0.05]  # no tie, nothing touched


def test_a_prediction_that_is_not_the_top_probability_is_refused_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,patient,target,prediction,prob_A4C,prob_PLAX\nr0,a,A4C,PLAX,0.9,0.1\n")
    with pytest.raises(ValueError, match=r"p\.csv: row 2 predicts"):
        read_predictions(path)
