"""The assembled report (Markdown, self-contained HTML, figures) and the `echojepa-report` command."""

from __future__ import annotations

import base64
import re
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from echojepa.cli.report import main
from echojepa.report.build import build_report, print_tables
from echojepa.report.plots import plot_attention

from .helpers import full_store, make_record, write_record
from .test_plots import assert_png

TITLES = [
    "Controlled Comparison",
    "LVEF Estimation",
    "Sample Efficiency on View Classification",
    "Robustness to Acoustic Degradation",
    "Multi-View RVSP Estimation",
    "Adult to Pediatric Transfer",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return full_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def report(store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("extra")
    frames = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    attention = plot_attention(frames, np.random.default_rng(1).random((2, 2, 2)), tmp / "attn.png")
    curves = {"jepa": ([0, 10, 20], [1.0, 0.6, 0.5]), "mae": ([0, 10, 20], [0.9, 0.4, 0.3])}
    out = tmp_path_factory.mktemp("out")
    return build_report(
        store, out, "Demo report", extra_figures={"Attention map": attention}, pretrain_curves=curves
    )


def test_report_files_exist_and_the_store_is_complete(report: dict) -> None:
    assert report["markdown"].is_file() and report["html"].is_file()
    assert report["complete"] is True
    assert report["n_records"] > 0 and report["superseded"] == 0
    # six backbones + a paired row for echojepa vs echomae and one for echojepa vs random_vit
    assert all(info["complete"] and info["rows"] == 8 for info in report["tables"].values())


def test_markdown_holds_all_six_tables_with_their_numbers(report: dict) -> None:
    md = report["markdown"].read_text()
    assert md.startswith("# Demo report")
    positions = [md.index(f"### {title}") for title in TITLES]
    assert positions == sorted(positions)
    for text in ("5.97 [5.67, 6.27]", "*26.7% better*", "*45.1 pts better*", "+16.8%", "57.6 ± 0.6"):
        assert text in md


def test_the_claims_section_comes_before_the_tables_in_both_formats(report: dict) -> None:
    md, html = report["markdown"].read_text(), report["html"].read_text()
    assert md.index("## Summary") < md.index("## Claims") < md.index("## Tables")
    assert html.index("<h2>Claims</h2>") < html.index("<h2>Tables</h2>")
    # the fabricated store's CSVs do not hold the predictions behind its numbers: said, not tested
    lvef = next(c for c in report["claims"] if c["claim"] == "JEPA vs MAE")
    assert lvef["verdict"] == "not tested" and "does not reproduce its record's mae" in lvef["reason"]
    assert "not tested: records/lvef/standard/echojepa/" in md


def test_figures_are_valid_pngs_linked_from_markdown(report: dict) -> None:
    names = {p.name for p in report["figures"]}
    expected = {
        "lvef_bland_altman_echojepa.png",
        "lvef_scatter_echojepa.png",
        "view_confusion_echojepa.png",
        "sample_efficiency.png",
        "robustness.png",
        "pediatric_transfer.png",
        "pretrain_loss.png",
        "Attention_map.png",
    }
    assert expected <= names
    md = report["markdown"].read_text()
    for path in report["figures"]:
        assert path.parent == report["markdown"].parent / "figures"
        assert f"](figures/{path.name})" in md
        assert_png(path)


def test_html_is_self_contained(report: dict) -> None:
    html = report["html"].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html)
    assert "<link" not in html and "<script" not in html and "@import" not in html
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(sources) == len(report["figures"])
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for title in TITLES:
        assert f"<h3>{title}</h3>" in html
    assert "5.97 [5.67, 6.27]" in html


def test_incomplete_store_reports_missing_cells(tmp_path: Path) -> None:
    write_record(tmp_path / "s", make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0}))
    result = build_report(tmp_path / "s", tmp_path / "out", "t")
    assert result["complete"] is False
    assert result["tables"]["controlled_comparison"]["missing"] == 1
    assert result["tables"]["robustness"]["rows"] == 0
    md = result["markdown"].read_text()
    assert "Missing cells: 1" in md and "No results for this table yet" in md


def test_summary_prints_each_objectives_measured_pretraining_flops(tmp_path: Path) -> None:
    write_record(tmp_path / "s", make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0}))
    gflops = {"jepa": 1445.1, "mae": 621.9}
    result = build_report(tmp_path / "s", tmp_path / "out", "t", pretrain_gflops=gflops)
    md = result["markdown"].read_text()
    assert "jepa 1,445.1 GFLOP, mae 621.9 GFLOP" in md
    assert "jepa 1,445.1 GFLOP" in result["html"].read_text()


def test_a_missing_predictions_csv_stops_the_report_or_is_skipped_and_listed(tmp_path: Path) -> None:
    record = make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0}, predictions_csv="gone.csv")
    write_record(tmp_path / "s", record)
    with pytest.raises(FileNotFoundError, match="gone.csv"):
        build_report(tmp_path / "s", tmp_path / "out", "t")
    result = build_report(tmp_path / "s", tmp_path / "out", "t", missing_predictions="skip")
    assert len(result["skipped_figures"]) == 1 and "gone.csv" in result["skipped_figures"][0]
    assert "gone.csv" in result["markdown"].read_text()


def test_an_extra_figure_that_is_not_a_png_is_refused(tmp_path: Path, store: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    with pytest.raises(ValueError, match="fake.png.*not a PNG"):
        build_report(store, tmp_path / "out", "t", extra_figures={"x": fake})


def test_print_tables_prints_all_six(store: Path) -> None:
    console = Console(file=StringIO(), width=220, color_system=None)
    tables = print_tables(store, console)
    text = console.file.getvalue()
    assert len(tables) == 6
    for title in TITLES:
        assert title in text
    assert "[5.67" not in text  # rich tables show plain values


def test_cli_writes_the_report_and_prints_tables(store: Path, tmp_path: Path, capsys) -> None:
    assert main(["--store", str(store), "--out", str(tmp_path / "r"), "--title", "CLI", "--print"]) == 0
    assert (tmp_path / "r" / "report.html").is_file()
    out = capsys.readouterr().out
    assert "report.md" in out and "Adult to Pediatric Transfer" in out


def test_cli_names_a_malformed_record_and_exits_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "s" / "records" / "view" / "standard" / "m" / "broken.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"backbone": 1}')
    assert main(["--store", str(tmp_path / "s"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "broken.json" in err and "backbone" in err
    assert not (tmp_path / "r" / "report.md").exists()


def test_cli_require_complete_exits_1_on_missing_cells(tmp_path: Path) -> None:
    write_record(tmp_path / "s", make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0}))
    args = ["--store", str(tmp_path / "s"), "--out", str(tmp_path / "r")]
    assert main(args) == 0
    assert main([*args, "--require-complete"]) == 1


# ------------------------------------------------------------------ claims


def test_a_claim_without_a_backbone_of_its_kind_says_it_was_not_tested(tmp_path: Path) -> None:
    write_record(tmp_path / "s", make_record("echojepa", "lvef", "standard", "internal", {"mae": 5.0}))
    result = build_report(tmp_path / "s", tmp_path / "out", "t")
    jepa_mae = next(c for c in result["claims"] if c["claim"] == "JEPA vs MAE")
    assert jepa_mae["verdict"] == "not tested" and "no backbone of kind 'mae'" in jepa_mae["reason"]
    assert "- JEPA vs MAE: not tested: no backbone of kind 'mae'" in result["markdown"].read_text()
