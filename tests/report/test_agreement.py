"""The LVEF agreement table: the error split into a constant offset (bias) and ranking (r, AUROC)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from echojepa.metrics import regression_metrics
from echojepa.report.agreement import lvef_agreement_table
from echojepa.report.build import build_report
from echojepa.report.paired import Pairing
from echojepa.report.records import ResultSet, load_records

from .helpers import full_store, make_record, record_path, write_record

N = 80


def _predictions(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.uniform(20, 75, N).round(3)
    return target, target + rng.normal(0.0, 4.0, N).round(3)


def _write(store: Path, backbone: str, condition: str, target: np.ndarray, pred: np.ndarray, seed: int = 0):
    """A record and its predictions CSV, the record's MAE reproduced by the CSV (as the runner writes)."""
    rec = make_record(
        backbone,
        "lvef",
        "standard",
        condition,
        {"mae": regression_metrics(pred, target)["mae"], "auroc_ef_below_50": 0.8},
        seed=seed,
    )
    path = record_path(store, rec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "patient", "target", "prediction"])
        for i, (t, p) in enumerate(zip(target, pred)):
            w.writerow([f"v{i}", f"p{i}", f"{t:.3f}", f"{p:.3f}"])
    rec["predictions_csv"] = path.with_suffix(".csv").name
    write_record(store, rec)


def _table(store: Path):
    rs = ResultSet.from_records(load_records(store))
    return lvef_agreement_table(rs, Pairing(store))


def _cells(table, label: str) -> dict[str, float | None]:
    row = next(r for r in table.rows if r.label == label)
    return {f"{c.group} {c.header}": cell.value for c, cell in zip(table.columns, row.cells)}


def test_an_external_offset_shows_as_bias_and_leaves_r_and_auroc_alone(tmp_path: Path):
    target, pred = _predictions(0)
    _write(tmp_path, "echojepa", "internal", target, pred)
    _write(tmp_path, "echojepa", "external", target, pred - 15.0)  # the same ranking, read 15 points low
    cells = _cells(_table(tmp_path), "echojepa")
    assert cells["Internal Bias"] == pytest.approx(np.mean(pred - target), abs=1e-6)
    assert cells["External Bias"] == pytest.approx(cells["Internal Bias"] - 15.0, abs=1e-6)
    assert cells["External r"] == pytest.approx(cells["Internal r"], abs=1e-9)
    assert cells["Internal r"] == pytest.approx(np.corrcoef(pred, target)[0, 1], abs=1e-9)
    assert cells["Internal AUROC"] == pytest.approx(0.8)


def test_the_compared_pairs_get_a_paired_ci_of_the_difference_in_r(tmp_path: Path):
    target, good = _predictions(1)
    noisy = good + np.random.default_rng(2).normal(0.0, 12.0, N).round(3)  # the same items, ranked worse
    for condition in ("internal", "external"):
        _write(tmp_path, "echojepa", condition, target, good)
        _write(tmp_path, "random_vit", condition, target, noisy)
    table = _table(tmp_path)
    row = next(r for r in table.rows if r.label == "echojepa vs random_vit")
    assert row.summary
    gains = [cell for c, cell in zip(table.columns, row.cells) if c.header == "r"]
    assert len(gains) == 2
    for gain in gains:
        assert gain.value > 0 and gain.ci is not None and gain.ci[0] > 0  # clearly higher, CI above 0
    assert not any(note.startswith("No paired CI") for note in table.notes)


def test_the_trivial_row_is_left_out_and_stores_without_predictions_give_empty_cells(tmp_path: Path):
    target, pred = _predictions(3)
    _write(tmp_path, "echojepa", "internal", target, pred)
    write_record(tmp_path, make_record("train_mean", "lvef", "standard", "internal", {"mae": 11.0}))
    write_record(tmp_path, make_record("random_vit", "lvef", "standard", "internal", {"mae": 7.0}))
    table = _table(tmp_path)
    assert [r.label for r in table.rows if not r.summary] == ["random_vit", "echojepa"]
    assert _cells(table, "random_vit")["Internal r"] is None


def test_the_report_shows_the_agreement_table_after_the_six(tmp_path: Path):
    store = full_store(tmp_path / "store")
    result = build_report(store, tmp_path / "out")
    text = Path(result["markdown"]).read_text()
    assert text.index("### Adult to Pediatric Transfer") < text.index("### LVEF Agreement: Offset vs Ranking")
    assert "trivial" not in {row["kind"] for row in result["lvef_agreement"]}
    assert {row["model"] for row in result["lvef_agreement"] if row["kind"] != "summary"} == {
        "pixel_stats",
        "random_vit",
        "echomae",
        "echojepa",
        "echoprime",
    }
