"""Assemble the report: the six tables plus figures, as Markdown, self-contained HTML and terminal text.

`build_report` writes `out/report.md` (figures linked from `out/figures/`), `out/report.html` (the
same content with every figure embedded as a base64 PNG: one file to send around, no external
assets) and `out/figures/*.png`. Figures come from the records themselves (predictions CSVs for the
LVEF agreement plots and view confusion matrices, aggregated tables for the bar and curve plots) and
from what the caller passes (pretraining loss curves, ready-made PNGs such as attention maps).
Per backbone and evaluation, the agreement/confusion figures use the lowest seed's predictions.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console

from echojepa.io.atomic import atomic_write_bytes, atomic_write_text
from echojepa.report import plots
from echojepa.report.agreement import lvef_agreement_table
from echojepa.report.claims import Claim, claims_html, claims_markdown, seed_claims
from echojepa.report.paired import Pairing
from echojepa.report.records import ResultSet, load_records, order_backbones, resolve_csv
from echojepa.report.render import to_html, to_markdown, to_rich
from echojepa.report.setup import setup_table
from echojepa.report.tables import ROBUSTNESS_CONDITIONS, SAMPLE_FRACTIONS, Table, build_tables, complete

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_TITLE = "EchoJEPA evaluation report"

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 0.3em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; text-align: center; }
td:first-child { text-align: left; }
tr.summary td { font-style: italic; background: #fafafa; }
td.missing { color: #999; }
p.note { font-size: 0.85em; color: #555; margin: 0.2em 0 1em; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 520px; }
figcaption { font-size: 0.85em; color: #444; }
"""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "unnamed"


class _Figures:
    """Figure paths and captions in report order, with unique file names."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.items: list[tuple[str, Path]] = []

    def path(self, stem: str) -> Path:
        taken = {p.name for _, p in self.items}
        name, k = f"{_slug(stem)}.png", 1
        while name in taken:
            k += 1
            name = f"{_slug(stem)}-{k}.png"
        return self.folder / name

    def add(self, caption: str, path: Path) -> None:
        self.items.append((caption, path))


def _lowest_seed_per_backbone(records: list[dict]) -> list[dict]:
    """The lowest seed's record per backbone, in table row order."""
    chosen: dict[str, dict] = {}
    for record in records:
        if record.get("predictions_csv") is None:
            continue
        other = chosen.get(record["backbone"])
        if other is None or record["seed"] < other["seed"]:
            chosen[record["backbone"]] = record
    order = order_backbones({(name, r["backbone_kind"]) for name, r in chosen.items()})
    return [chosen[name] for name, _ in order]


def _prediction_figures(rs: ResultSet, store: Path, figs: _Figures, missing: str, skipped: list[str]) -> None:
    def csv_of(record: dict) -> Path | None:
        try:
            return resolve_csv(record, store)
        except FileNotFoundError as err:
            if missing == "error":
                raise
            skipped.append(str(err))
            return None

    for record in _lowest_seed_per_backbone(rs.select("lvef", "standard", "internal")):
        path = csv_of(record)
        if path is None:
            continue
        pred, target = plots.read_regression_predictions(path)
        name = record["backbone"]
        figs.add(
            f"LVEF Bland-Altman, {name} (internal test)",
            plots.plot_bland_altman(
                pred, target, figs.path(f"lvef_bland_altman_{name}"), title=f"LVEF Bland-Altman: {name}"
            ),
        )
        figs.add(
            f"LVEF predicted vs true, {name} (internal test)",
            plots.plot_pred_vs_true(pred, target, figs.path(f"lvef_scatter_{name}"), title=f"LVEF: {name}"),
        )
    for record in _lowest_seed_per_backbone(rs.select("view", "standard", "internal")):
        path = csv_of(record)
        if path is None:
            continue
        target, pred, classes = plots.read_class_predictions(path)
        matrix = plots.confusion_matrix(target, pred, len(classes))
        name = record["backbone"]
        figs.add(
            f"View confusion matrix (row-normalised), {name}",
            plots.plot_confusion(
                matrix, classes, figs.path(f"view_confusion_{name}"), title=f"View confusion: {name}"
            ),
        )


def _table_values(table: Table, first: int, count: int, keys: Sequence[str]) -> dict[str, dict]:
    data = {}
    for row in table.rows:
        if row.summary:
            continue
        cells = row.cells[first : first + count]
        values = {k: (c.value if c.finite else None) for k, c in zip(keys, cells)}
        if any(v is not None for v in values.values()):
            data[row.label] = values
    return data


def _table_figures(tables: dict[str, Table], figs: _Figures) -> None:
    series = {}
    for row in tables["sample_efficiency"].rows:
        if row.summary:  # the paired improvement rows are not curves
            continue
        points = [(f, c) for (f, _), c in zip(SAMPLE_FRACTIONS, row.cells) if c.finite]
        if points:
            series[row.label] = (
                [f for f, _ in points],
                [c.value for _, c in points],
                [c.sd for _, c in points],
            )
    if series:
        figs.add(
            "Sample efficiency: view accuracy vs labelled fraction (mean ± sd over seeds)",
            plots.plot_sample_efficiency(series, figs.path("sample_efficiency")),
        )

    conditions = [("original", "Original")] + [
        (k, k.replace("_", " ").capitalize()) for k, *_ in ROBUSTNESS_CONDITIONS
    ]
    data = _table_values(tables["robustness"], 0, len(conditions), [k for k, _ in conditions])
    if data:
        figs.add(
            "LVEF MAE per acoustic degradation condition",
            plots.plot_robustness(data, conditions, figs.path("robustness")),
        )

    pediatric = [("zero_shot", "Zero-Shot"), ("fine_tuned", "Fine-Tuned")]
    data = _table_values(tables["pediatric_transfer"], 0, 2, [k for k, _ in pediatric])
    if data:
        figs.add(
            "Adult to pediatric LVEF transfer",
            plots.plot_pediatric(data, figs.path("pediatric_transfer"), pediatric),
        )


def _copy_extra(extra: Mapping[str, Path | str], figs: _Figures) -> None:
    for caption, source in extra.items():
        source = Path(source)
        if not source.is_file():
            raise FileNotFoundError(f"{source}: extra figure {caption!r} does not exist")
        with source.open("rb") as f:
            if f.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                raise ValueError(f"{source}: extra figure {caption!r} is not a PNG file")
        target = figs.path(caption)
        if source.resolve() != target.resolve():
            atomic_write_bytes(target, source.read_bytes())  # figures are small; never half a PNG
        figs.add(caption, target)


def _summary_lines(tables: list[Table], n_records: int, superseded: int, skipped: list[str]) -> list[str]:
    lines = [f"Records: {n_records} evaluation(s) on the test split."]
    if superseded:
        lines.append(
            "Repeated records set aside (the same evaluation written again: the trivial row by every "
            f"backbone's run, or a re-run; the newest is kept): {superseded}."
        )
    for table in tables:
        state = "complete" if complete(table) else f"incomplete ({table.missing} missing cell(s))"
        if not table.rows:
            state = "no results"
        lines.append(f"{table.title}: {len(table.rows)} row(s), {state}.")
    lines += [f"Figure skipped: {reason}" for reason in skipped]
    return lines


def _markdown(
    title: str,
    summary: list[str],
    tables: list[Table],
    setup: Table,
    figs: _Figures,
    out: Path,
    claims: list[Claim],
) -> str:
    parts = [f"# {title}", "", "## Summary", ""]
    parts += [f"- {line}" for line in summary]
    parts += ["", claims_markdown(claims), "## Tables", ""]
    parts += [to_markdown(t, ci=True) for t in tables]
    parts += [to_markdown(setup, ci=False)]
    if figs.items:
        parts += ["## Figures", ""]
        for caption, path in figs.items:
            parts += [f"![{caption}]({path.relative_to(out).as_posix()})", "", f"_{caption}_", ""]
    return "\n".join(parts) + "\n"


def _html(
    title: str, summary: list[str], tables: list[Table], setup: Table, figs: _Figures, claims: list[Claim]
) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<h2>Summary</h2><ul>",
        *(f"<li>{esc(line)}</li>" for line in summary),
        "</ul>",
        claims_html(claims),
        "<h2>Tables</h2>",
        *(to_html(t, ci=True) for t in tables),
        to_html(setup, ci=False),
    ]
    if figs.items:
        parts.append("<h2>Figures</h2>")
        for caption, path in figs.items:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build_report(
    store: Path,
    out: Path,
    title: str = DEFAULT_TITLE,
    extra_figures: Mapping[str, Path | str] | None = None,
    pretrain_curves: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    missing_predictions: str = "error",
    pretrain_gflops: Mapping[str, float] | None = None,
    online_probes: Mapping[str, Path | str] | None = None,
) -> dict:
    """Write out/report.md, out/report.html and out/figures/*.png from the results store.

    extra_figures: caption -> an existing PNG (e.g. an attention map) copied in and embedded.
    pretrain_curves: objective name -> (steps, losses), drawn as one figure.
    pretrain_gflops: objective name -> the run's measured training compute in GFLOP (its logged
    `train/gflops_total`), printed in the summary beside the compute-matched comparison.
    online_probes: pretrained encoder name -> its run's online_probe.csv, drawn as one figure of probe
    metric vs pretraining step with the random-init and pixel-statistics references.
    missing_predictions: "error" (default) stops when a record names a predictions CSV that does not
    exist; "skip" leaves that figure out and lists it in the summary.
    Returns {"markdown", "html", "figures": [paths], "complete": bool, "tables": {key: {"title",
    "rows", "missing", "complete"}}, "n_records", "superseded", "skipped_figures": [reasons],
    "lvef_agreement": the agreement table's plain rows (`echojepa.report.agreement`),
    "claims": [each seed claim's paired test, see `echojepa.report.claims`]}.
    """
    if missing_predictions not in ("error", "skip"):
        raise ValueError(f"missing_predictions must be 'error' or 'skip', got {missing_predictions!r}")
    store, out = Path(store), Path(out)
    rs = ResultSet.from_records(load_records(store))
    pairing = Pairing(store, missing=missing_predictions)  # paired CIs read the predictions CSVs
    tables = build_tables(rs, pairing)
    claims = seed_claims(rs, pairing)
    out.mkdir(parents=True, exist_ok=True)
    figs = _Figures(out / "figures")
    figs.folder.mkdir(exist_ok=True)
    skipped: list[str] = []

    _prediction_figures(rs, store, figs, missing_predictions, skipped)
    _table_figures({t.key: t for t in tables}, figs)
    if pretrain_curves:
        figs.add(
            "Pretraining loss per objective",
            plots.plot_loss_curves(pretrain_curves, figs.path("pretrain_loss")),
        )
    if online_probes:
        figs.add(
            "Online probes during pretraining (closed-form probe on a fixed labelled subset, validation)",
            plots.plot_online_probes(
                {k: Path(v) for k, v in online_probes.items()}, figs.path("online_probes")
            ),
        )
    if extra_figures:
        _copy_extra(extra_figures, figs)

    left_empty: list[str] = []
    agreement = lvef_agreement_table(rs, pairing, left_empty)
    summary = _summary_lines(tables, len(rs.records), rs.superseded, skipped)
    # The same missing CSV usually empties a figure too: say it once.
    summary += [f"Agreement cells left empty: {reason}" for reason in left_empty if reason not in skipped]
    if pretrain_gflops:
        totals = ", ".join(f"{name} {gflops:,.1f} GFLOP" for name, gflops in pretrain_gflops.items())
        summary.append(f"Pretraining compute (analytic FLOPs summed over every step's masks): {totals}.")
    md_path, html_path = out / "report.md", out / "report.html"
    # After the six tables: the LVEF error split into offset and ranking, then what each backbone was given.
    shown = [*tables, agreement] if any(c.finite for row in agreement.rows for c in row.cells) else tables
    setup = setup_table(rs)
    atomic_write_text(md_path, _markdown(title, summary, shown, setup, figs, out, claims))
    atomic_write_text(html_path, _html(title, summary, shown, setup, figs, claims))
    return {
        "markdown": md_path,
        "html": html_path,
        "figures": [path for _, path in figs.items],
        "complete": all(complete(t) for t in tables),
        "tables": {
            t.key: {"title": t.title, "rows": len(t.rows), "missing": t.missing, "complete": complete(t)}
            for t in tables
        },
        "n_records": len(rs.records),
        "superseded": rs.superseded,
        "skipped_figures": skipped,
        "claims": [c.as_dict() for c in claims],
        "lvef_agreement": agreement.as_rows(),
    }


def print_tables(store: Path, console: Console | None = None) -> list[Table]:
    """Print the six tables (plain values) and what each backbone was given to the terminal; return the
    six tables."""
    console = console or Console()
    rs = ResultSet.from_records(load_records(Path(store)))
    tables = build_tables(rs)
    for table in [*tables, setup_table(rs)]:
        console.print(to_rich(table))
        console.print()
    return tables
