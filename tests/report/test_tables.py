"""Loading the results store and building the seed's six tables from it."""

from __future__ import annotations

import json
import math
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from echojepa.report.paired import Pairing
from echojepa.report.records import RecordError, ResultSet
from echojepa.report.render import to_html, to_markdown, to_rich
from echojepa.report.tables import (
    build_tables,
    complete,
    controlled_comparison_table,
    load_records,
    multiview_rvsp_table,
    robustness_table,
    sample_efficiency_table,
)

from .helpers import BACKBONES, full_store, make_record, paired_store, write_record

ORDER = list(BACKBONES)  # trivial, pixel_stats, random, mae, jepa, other


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return full_store(tmp_path_factory.mktemp("store"), predictions=False)


@pytest.fixture(scope="module")
def tables(store: Path) -> dict:
    return {t.key: t for t in build_tables(load_records(store))}


def _rs(*records: dict) -> ResultSet:
    return ResultSet.from_records(list(records))


def _rich_text(table) -> str:
    console = Console(file=StringIO(), width=200, color_system=None)
    console.print(to_rich(table))
    return console.file.getvalue()


# ------------------------------------------------------------------ loading and validation


def test_load_records_reads_every_record_and_remembers_its_file(store: Path) -> None:
    records = load_records(store)
    assert len(records) == len(list((store / "records").rglob("*.json")))
    assert all(Path(r["_file"]).is_file() for r in records)


def test_malformed_json_is_an_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "records" / "lvef" / "standard" / "x" / "internal-seed0-aa.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(RecordError, match="internal-seed0-aa.json") as err:
        load_records(tmp_path)
    assert "not valid JSON" in err.value.reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r.pop("metrics"), "metrics"),
        (lambda r: r.update(task="ef"), "unknown task"),
        (lambda r: r.update(seed="0"), "seed"),
        (lambda r: r.update(split="val"), "split"),
        (lambda r: r["metrics"].update(mae={"ci": [1, 2]}), "value"),
        (lambda r: r["metrics"]["mae"].update(ci=[1.0]), "ci"),
        (lambda r: r.update(created="yesterday"), "ISO"),
        (lambda r: r.update(chosen={"head": 1}), "chosen"),
    ],
)
def test_schema_violation_is_an_error_naming_file_and_reason(tmp_path: Path, change, reason: str) -> None:
    record = make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0})
    change(record)
    path = write_record(tmp_path, record)
    with pytest.raises(RecordError, match=reason) as err:
        load_records(tmp_path)
    assert err.value.path == str(path)


def test_a_store_without_records_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no records/ folder"):
        load_records(tmp_path)


def test_one_backbone_with_two_kinds_is_refused() -> None:
    a = make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0})
    b = make_record("echojepa", "view", "standard", "internal", {"accuracy": 0.5}, kind="mae")
    with pytest.raises(RecordError, match="has kind"):
        _rs(a, b)


def test_newest_rerun_of_an_evaluation_wins_and_the_older_is_counted() -> None:
    old = make_record("echojepa", "lvef", "standard", "internal", {"mae": 9.0}, created="2026-01-01T00:00:00")
    new = make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0}, created="2026-02-01T00:00:00")
    rs = _rs(new, old)
    assert rs.superseded == 1
    assert controlled_comparison_table(rs).rows[0].cells[1].value == 5.0


# ------------------------------------------------------------------ shapes and order


def test_every_table_has_the_seeds_columns(tables: dict) -> None:
    headers = {key: [c.header for c in t.columns] for key, t in tables.items()}
    assert list(headers) == [
        "controlled_comparison",
        "lvef_estimation",
        "sample_efficiency",
        "robustness",
        "multiview_rvsp",
        "pediatric_transfer",
    ]
    assert headers["controlled_comparison"] == ["Objective", "LVEF MAE ↓", "View Acc ↑"]
    assert headers["lvef_estimation"] == ["Internal test", "External test"]
    assert headers["sample_efficiency"] == ["1%", "10%", "100%"]
    assert headers["robustness"] == ["Original", "Low", "Med", "High", "Low", "Med", "High", "Avg. Deg. ↓"]
    assert [c.group for c in tables["robustness"].columns][1:7] == ["Depth Attenuation"] * 3 + [
        "Gaussian Shadow"
    ] * 3
    assert headers["multiview_rvsp"] == ["Single-view", "Multi-view"]
    assert headers["pediatric_transfer"] == ["Zero-Shot", "Fine-Tuned"]


def test_rows_follow_baseline_pixel_random_mae_jepa_other_order(tables: dict) -> None:
    for key, table in tables.items():
        labels = [r.label for r in table.rows if not r.summary]
        assert labels == ORDER, key


def test_full_store_makes_every_table_complete(tables: dict) -> None:
    assert all(complete(t) for t in tables.values())
    assert all(t.missing == 0 for t in tables.values())


def test_an_empty_table_is_not_complete() -> None:
    table = multiview_rvsp_table(_rs(make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0})))
    assert table.rows == [] and not complete(table)


# ------------------------------------------------------------------ numbers


def test_relative_improvement_of_jepa_over_mae_reads_positive_when_jepa_is_better(tables: dict) -> None:
    table = tables["controlled_comparison"]
    row = next(r for r in table.rows if r.summary and r.cells[0].text == "echojepa vs echomae")
    assert row.label == "Relative Improvement"
    assert row.cells[1].value == pytest.approx((8.15 - 5.97) / 8.15)  # a lower MAE is an improvement
    assert row.cells[2].value == pytest.approx(0.855 - 0.404)
    md = to_markdown(table)
    assert "*26.7% better*" in md and "*45.1 pts better*" in md


def test_a_worse_mae_shows_as_worse_never_as_a_plus() -> None:
    # the demo's numbers: EchoJEPA 8.76 vs EchoMAE 8.47 used to read "+3.4%"
    records = [
        make_record("echomae", "lvef", "standard", "internal", {"mae": 8.47}),
        make_record("echojepa", "lvef", "standard", "internal", {"mae": 8.76}),
        make_record("echomae", "view", "standard", "internal", {"accuracy": 0.617}),
        make_record("echojepa", "view", "standard", "internal", {"accuracy": 0.478}),
    ]
    table = controlled_comparison_table(_rs(*records))
    row = table.rows[-1]
    assert row.cells[1].value == pytest.approx(-(8.76 - 8.47) / 8.47)
    md = to_markdown(table)
    assert "*3.4% worse*" in md and "*13.9 pts worse*" in md
    assert "+3.4%" not in md and "+13.9" not in md
    assert "3.4% worse" in _rich_text(table) and "3.4% worse" in to_html(table)


def test_no_relative_improvement_row_without_both_objectives() -> None:
    table = controlled_comparison_table(
        _rs(make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0}))
    )
    assert [r.label for r in table.rows] == ["echojepa"]


def test_every_table_has_a_paired_row_per_compared_pair_after_the_backbones(tables: dict) -> None:
    for key, table in tables.items():
        summary = [r for r in table.rows if r.summary]
        assert table.rows[-len(summary) :] == summary, key
        texts = [r.cells[0].text if key == "controlled_comparison" else r.label for r in summary]
        assert texts == ["echojepa vs echomae", "echojepa vs random_vit"], key
        assert all(len(r.cells) == len(table.columns) for r in summary), key


def test_paired_rows_carry_the_paired_ci_of_the_improvement(tmp_path: Path) -> None:
    rs = ResultSet.from_records(load_records(paired_store(tmp_path)))
    pairing = Pairing(tmp_path)
    lvef = {t.key: t for t in build_tables(rs, pairing)}["lvef_estimation"]
    row = next(r for r in lvef.rows if r.label == "echojepa vs echomae")
    cell = row.cells[0]
    jepa, mae = (next(r for r in lvef.rows if r.label == b).cells[0].value for b in ("echojepa", "echomae"))
    assert cell.value == pytest.approx(mae - jepa, rel=1e-4)
    assert cell.ci is not None and cell.ci[0] < cell.value < cell.ci[1]
    assert "better [+" in to_markdown(lvef)
    assert build_tables(rs)[1].rows[-2].cells[0].ci is None  # no pairing, no CI


def test_paired_robustness_row_tests_the_average_degradation(tmp_path: Path) -> None:
    rs = ResultSet.from_records(load_records(paired_store(tmp_path)))
    table = robustness_table(rs, Pairing(tmp_path))
    deg = {r.label: r.cells[-1] for r in table.rows}
    gain = deg["echojepa vs echomae"]
    assert gain.value == pytest.approx(deg["echomae"].value - deg["echojepa"].value, rel=1e-4)
    assert gain.ci is not None and gain.ci[0] <= gain.value <= gain.ci[1]


def test_average_degradation_is_mean_relative_mae_increase(tables: dict) -> None:
    row = next(r for r in tables["robustness"].rows if r.label == "echoprime")
    original, *degraded = [4.87, 5.58, 5.71, 5.91, 5.55, 5.61, 5.78]
    assert row.cells[-1].value == pytest.approx(np.mean([(d - original) / original for d in degraded]))
    assert "+16.8%" in to_markdown(tables["robustness"])


def test_average_degradation_is_missing_when_one_condition_is_missing() -> None:
    records = [
        make_record("echojepa", "lvef", "robustness", c, {"mae": 5.0}) for c in ("original", "depth_low")
    ]
    table = robustness_table(_rs(*records))
    assert table.rows[0].cells[-1].value is None
    assert table.missing == 6  # five degraded conditions and Avg. Deg.


def test_sample_efficiency_is_mean_and_sd_over_seeds(tables: dict) -> None:
    table = tables["sample_efficiency"]
    cell = table.rows[0].cells[0]
    assert cell.n_seeds == 3
    assert cell.value == pytest.approx(0.576)
    assert cell.sd == pytest.approx(np.std([0.570, 0.576, 0.582], ddof=1))
    one_percent = to_markdown(table).splitlines()[4]
    assert "57.6 ± 0.6" in one_percent
    assert table.rows[0].cells[2].n_seeds == 1 and table.rows[0].cells[2].sd is None


def test_sample_efficiency_matches_fractions_numerically() -> None:
    records = [
        make_record("echojepa", "view", "sample_efficiency", "fraction=1", {"accuracy": 0.9}),
        make_record("echojepa", "view", "sample_efficiency", "fraction=0.10", {"accuracy": 0.8}),
    ]
    cells = sample_efficiency_table(_rs(*records)).rows[0].cells
    assert [c.value for c in cells] == [None, 0.8, 0.9]


def test_a_seed_without_the_metric_makes_the_cell_missing_rather_than_averaging_fewer() -> None:
    records = [
        make_record("echojepa", "view", "sample_efficiency", "fraction=0.01", {"accuracy": 0.5}, seed=0),
        make_record(
            "echojepa", "view", "sample_efficiency", "fraction=0.01", {"balanced_accuracy": 0.5}, seed=1
        ),
    ]
    assert not sample_efficiency_table(_rs(*records)).rows[0].cells[0].finite


def test_a_non_finite_metric_counts_as_missing() -> None:
    table = controlled_comparison_table(
        _rs(make_record("echojepa", "lvef", "standard", "internal", {"mae": math.nan}))
    )
    assert table.missing == 2 and not complete(table)


def test_late_fusion_column_appears_only_when_it_ran() -> None:
    single = make_record("echojepa", "rvsp", "standard", "single_view", {"mae": 5.0})
    assert len(multiview_rvsp_table(_rs(single)).columns) == 2
    late = make_record("echojepa", "rvsp", "standard", "late_fusion", {"mae": 4.8})
    assert [c.header for c in multiview_rvsp_table(_rs(single, late)).columns][-1] == "Late fusion"


# ------------------------------------------------------------------ rendering


def test_missing_cells_render_as_dash_and_are_counted() -> None:
    table = controlled_comparison_table(
        _rs(make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0}))
    )
    assert table.missing == 1
    md = to_markdown(table)
    assert "| echojepa | Latent prediction | **5.00** | — |" in md
    assert "Missing cells: 1" in md
    assert "—" in _rich_text(table)
    assert 'class="missing">—<' in to_html(table)


def test_single_run_cells_show_the_ci_in_markdown_and_html_but_not_in_rich(tables: dict) -> None:
    table = tables["controlled_comparison"]
    assert "5.97 [5.67, 6.27]" in to_markdown(table)
    assert "5.97 [5.67, 6.27]" in to_html(table)
    text = _rich_text(table)
    assert "5.97" in text and "[5.67" not in text


def test_best_value_of_a_column_is_bold(tables: dict) -> None:
    md = to_markdown(tables["controlled_comparison"])
    assert "**85.5%" in md  # the highest view accuracy
    assert "**5.00 [" in md  # the lowest LVEF MAE (train_mean's fabricated 5.00)


def test_html_robustness_header_groups_depth_and_shadow_columns(tables: dict) -> None:
    html = to_html(tables["robustness"])
    assert '<th colspan="3">Depth Attenuation</th>' in html
    assert '<th colspan="3">Gaussian Shadow</th>' in html
    assert '<th rowspan="2">Avg. Deg. ↓</th>' in html


def test_as_rows_gives_plain_values(tables: dict) -> None:
    rows = tables["controlled_comparison"].as_rows()
    jepa = next(r for r in rows if r["model"] == "echojepa")
    assert jepa == {
        "model": "echojepa",
        "kind": "jepa",
        "Objective": "Latent prediction",
        "LVEF MAE ↓": 5.97,
        "View Acc ↑": 0.855,
    }
    json.dumps(rows)  # plain types only
