"""The seed's six result tables, built as data from the results store.

Each table is a `Table` of rows (one per backbone, in the fixed row order trivial baseline -> pixel
statistics -> random init -> EchoMAE -> EchoJEPA -> others) and cells that hold numbers, never
strings, so they can be rendered as Markdown, HTML or rich (see `echojepa.report.render`) and checked
with `complete(table)`.

What fills a cell (records from `echojepa.report.records`):
- one record: its metric value and bootstrap CI;
- several seeds of the same evaluation: mean and sample sd (ddof=1) over seeds, no CI;
- no record, a record without the metric, or a non-finite value: missing ("—"), counted in
  `Table.missing`. If some seeds of a cell lack the metric the whole cell is missing rather than
  averaged over fewer seeds.
Accuracies are stored as fractions (0-1) and shown as percentages; MAEs are shown in their units.

Paired rows (summary rows, never counted as missing): for the pairs the seed's claims compare (each
latent-prediction backbone against each reconstruction and each random-init one, by the records'
`backbone_kind`), every table adds a row saying how much better the first is than the second in each
column, positive = better whatever the metric's direction (a lower MAE is an improvement). In the
Controlled Comparison this is the Relative Improvement row. Given a `Pairing` (the store, to read the
predictions CSVs), each such cell also carries the paired bootstrap CI of that improvement (see
`echojepa.report.paired`); where it cannot be computed the table's notes say why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from echojepa.report.paired import (
    Comparison,
    Pairing,
    PairingError,
    compare_two,
    degradation_gain,
    improvement,
)
from echojepa.report.records import (
    ResultSet,
    load_records,
    metric_ci,
    metric_value,
    order_backbones,
)

__all__ = [
    "Cell",
    "Column",
    "Row",
    "Table",
    "build_tables",
    "complete",
    "comparison_pairs",
    "controlled_comparison_table",
    "load_records",
    "lvef_estimation_table",
    "multiview_rvsp_table",
    "pediatric_transfer_table",
    "robustness_table",
    "sample_efficiency_table",
]

# Cell formats (rendering lives in render.py; the names say what the stored number means).
FMT_MAE = "mae"  # a value in its own units (EF points, mmHg)
FMT_SIGNED = "signed"  # the same, signed: an offset such as a Bland-Altman bias (-14.43, +0.44)
FMT_PCT = "pct"  # a fraction shown as a percentage with a sign: 0.855 -> 85.5%
FMT_PCT_PLAIN = "pct_plain"  # a fraction shown as a bare percentage number: 0.576 -> 57.6
FMT_SIGNED_PCT = "signed_pct"  # a relative change: -0.267 -> -26.7%
FMT_PTS = "pts"  # a difference of fractions in percentage points: 0.451 -> +45.1 pts
FMT_TEXT = "text"
# Improvements, positive = better (rendered "2.18 better" / "3.4% worse", CIs signed): in the column's
# units, as a fraction of the baseline's value, or as a difference of fractions in percentage points.
FMT_GAIN = "gain"
FMT_GAIN_PCT = "gain_pct"
FMT_GAIN_PTS = "gain_pts"
GAIN_FMTS = (FMT_GAIN, FMT_GAIN_PCT, FMT_GAIN_PTS)

# The backbone kinds the seed's claims compare: latent prediction against reconstruction and against
# the random-init floor.
COMPARED_KINDS = (("jepa", "mae"), ("jepa", "random"))

OBJECTIVES = {
    "trivial": "Train mean / majority",
    "pixel_stats": "Pixel statistics",
    "random": "Random init",
    "mae": "Reconstruction",
    "jepa": "Latent prediction",
}

# (condition, header, group, short group)
ROBUSTNESS_CONDITIONS = (
    ("depth_low", "Low", "Depth Attenuation", "Depth"),
    ("depth_med", "Med", "Depth Attenuation", "Depth"),
    ("depth_high", "High", "Depth Attenuation", "Depth"),
    ("shadow_low", "Low", "Gaussian Shadow", "Shadow"),
    ("shadow_med", "Med", "Gaussian Shadow", "Shadow"),
    ("shadow_high", "High", "Gaussian Shadow", "Shadow"),
)
SAMPLE_FRACTIONS = ((0.01, "1%"), (0.1, "10%"), (1.0, "100%"))


@dataclass(frozen=True)
class Column:
    header: str
    fmt: str = FMT_MAE
    better: str | None = None  # "lower" | "higher": the best value of the column is emphasised
    group: str | None = None  # an upper header shared by neighbouring columns (Robustness)
    short_group: str | None = None  # the group's name where space is tight (terminal tables)


@dataclass
class Cell:
    value: float | None = None
    sd: float | None = None  # over seeds, when n_seeds > 1
    ci: tuple[float, float] | None = None  # bootstrap CI of a single evaluation
    n_seeds: int = 0
    text: str | None = None  # a text cell (Objective); never counted as missing
    fmt: str | None = None  # overrides the column's format (the Relative Improvement row)

    @property
    def is_text(self) -> bool:
        return self.text is not None

    @property
    def finite(self) -> bool:
        return self.value is not None and math.isfinite(self.value)


@dataclass
class Row:
    label: str
    kind: str
    cells: list[Cell]
    summary: bool = False  # a derived row (Relative Improvement), never emphasised as best


@dataclass
class Table:
    key: str
    title: str
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        """Number cells of backbone rows without a finite value (derived rows follow from them)."""
        return sum(
            1
            for row in self.rows
            if not row.summary
            for cell in row.cells
            if not cell.is_text and not cell.finite
        )

    def as_rows(self) -> list[dict]:
        """Plain rows: {"model", "kind", <column header>: value | text | None, ...}."""
        out = []
        for row in self.rows:
            item: dict = {"model": row.label, "kind": row.kind}
            for column, cell in zip(self.columns, row.cells):
                name = f"{column.group} {column.header}" if column.group else column.header
                item[name] = cell.text if cell.is_text else (cell.value if cell.finite else None)
                if cell.sd is not None:
                    item[f"{name} sd"] = cell.sd
            out.append(item)
        return out


def complete(table: Table) -> bool:
    """True when the table has rows and every number cell is finite."""
    return bool(table.rows) and table.missing == 0


@dataclass(frozen=True)
class Source:
    """Which records feed a column: task, protocol, a condition (or a test on it), the metric."""

    task: str
    protocol: str
    condition: str | Callable[[str], bool]
    metric: str

    def matches(self, record: dict) -> bool:
        if record["task"] != self.task or record["protocol"] != self.protocol:
            return False
        if callable(self.condition):
            return self.condition(record["condition"])
        return record["condition"] == self.condition


def aggregate(records: list[dict], metric: str) -> Cell:
    """One cell from the records (seeds) of one evaluation; see the module docstring."""
    if not records:
        return Cell()
    values = [metric_value(r, metric) for r in records]
    if any(v is None for v in values):
        return Cell(n_seeds=len(records))
    if len(values) == 1:
        return Cell(value=values[0], ci=metric_ci(records[0], metric), n_seeds=1)
    arr = np.asarray(values, dtype=np.float64)
    return Cell(value=float(arr.mean()), sd=float(arr.std(ddof=1)), n_seeds=len(values))


def _backbones(rs: ResultSet, sources: list[Source]) -> list[tuple[str, str]]:
    pairs = {(r["backbone"], r["backbone_kind"]) for r in rs.records if any(s.matches(r) for s in sources)}
    return order_backbones(pairs)


def _grid(rs: ResultSet, backbone: str, sources: list[Source]) -> list[Cell]:
    mine = [r for r in rs.records if r["backbone"] == backbone]
    return [aggregate([r for r in mine if s.matches(r)], s.metric) for s in sources]


def _grid_table(
    key: str,
    title: str,
    rs: ResultSet,
    columns: list[Column],
    sources: list[Source],
    pairing: Pairing | None = None,
) -> Table:
    rows = [Row(name, kind, _grid(rs, name, sources)) for name, kind in _backbones(rs, sources)]
    table = Table(key, title, columns, rows)
    _paired_rows(rs, table, sources, pairing)
    return table


def controlled_comparison_table(rs: ResultSet, pairing: Pairing | None = None) -> Table:
    """Backbones x (Objective, LVEF MAE, View Acc) plus EchoJEPA-vs-EchoMAE relative improvement."""
    sources = [
        Source("lvef", "standard", "internal", "mae"),
        Source("view", "standard", "internal", "accuracy"),
    ]
    columns = [
        Column("Objective", FMT_TEXT),
        Column("LVEF MAE ↓", FMT_MAE, "lower"),
        Column("View Acc ↑", FMT_PCT, "higher"),
    ]
    rows = [
        Row(name, kind, [Cell(text=OBJECTIVES.get(kind, kind)), *_grid(rs, name, sources)])
        for name, kind in _backbones(rs, sources)
    ]
    table = Table("controlled_comparison", "Controlled Comparison", columns, rows)
    for a, b in comparison_pairs(rows):
        # the seed's Relative Improvement: LVEF as the relative MAE reduction, accuracy in points
        gains = _gain_cells(rs, a, b, columns[1:], sources, 1, pairing, table, relative=True)
        table.rows.append(
            Row("Relative Improvement", "summary", [Cell(text=f"{a.label} vs {b.label}"), *gains], True)
        )
    if len(table.rows) > len(rows):
        table.notes.append(
            'Relative Improvement: how much better the first model is than the second ("worse" when it '
            "is not): LVEF as the relative reduction of MAE, view accuracy in percentage points." + _CI_NOTE
        )
    return table


_CI_NOTE = (
    " Brackets: paired bootstrap 95 % CI of the improvement (+ = the first model better), patients "
    "resampled jointly for both models; over seeds, the mean, with the seeds resampled too."
)


def comparison_pairs(rows: list[Row]) -> list[tuple[Row, Row]]:
    """(first, second) backbone rows the seed's claims compare (COMPARED_KINDS), in row order."""
    return [
        (a, b)
        for kind_a, kind_b in COMPARED_KINDS
        for a in rows
        if a.kind == kind_a and not a.summary
        for b in rows
        if b.kind == kind_b and not b.summary
    ]


def gain_format(column: Column, relative: bool = False) -> str:
    """How an improvement in this column is shown: MAE-like values in their units (or relative), any
    fraction (accuracy, Avg. Deg.) in percentage points."""
    if column.fmt == FMT_MAE:
        return FMT_GAIN_PCT if relative else FMT_GAIN
    return FMT_GAIN_PTS


def _records(rs: ResultSet, backbone: str, source: Source) -> list[dict]:
    return [r for r in rs.records if r["backbone"] == backbone and source.matches(r)]


def _gain_cells(
    rs: ResultSet,
    a: Row,
    b: Row,
    columns: list[Column],
    sources: list[Source],
    offset: int,
    pairing: Pairing | None,
    table: Table,
    relative: bool = False,
) -> list[Cell]:
    """One improvement cell per (column, source): a's cell vs b's cell, with the paired CI if it can be
    computed (otherwise one note per pair saying why)."""
    cells, failed = [], []
    for j, (column, source) in enumerate(zip(columns, sources)):
        ca, cb = a.cells[offset + j], b.cells[offset + j]
        rel = relative and column.fmt == FMT_MAE  # accuracies always differ in points
        cell = Cell(fmt=gain_format(column, rel))
        if ca.finite and cb.finite and column.better:
            cell.value = float(improvement(ca.value, cb.value, column.better, rel))
            if pairing is not None:
                try:
                    mine, theirs = _records(rs, a.label, source), _records(rs, b.label, source)
                    _set_paired(cell, compare_two(mine, theirs, source.metric, pairing, relative=rel))
                except PairingError as err:
                    failed.append((column, str(err)))
        cells.append(cell)
    _note_failures(table, a, b, failed)
    return cells


def _set_paired(cell: Cell, comparison: Comparison) -> None:
    """The paired estimate and its CI; the estimate comes from the same predictions as the CI (it
    equals the one from the cells up to the CSV's rounding), so it always lies inside its interval."""
    lo, hi = comparison.result.ci
    if math.isfinite(lo) and math.isfinite(hi):
        cell.value, cell.ci = comparison.result.difference, (lo, hi)


def _note_failures(table: Table, a: Row, b: Row, failed: list[tuple[Column, str]]) -> None:
    if failed:
        headers = ", ".join(f"{c.group} {c.header}" if c.group else c.header for c, _ in failed)
        table.notes.append(f"No paired CI for {a.label} vs {b.label} ({headers}): {failed[0][1]}")


def _paired_rows(
    rs: ResultSet, table: Table, sources: list[Source], pairing: Pairing | None
) -> list[tuple[Row, Row]]:
    """Append the paired improvement rows of a grid table (one column per source); returns the pairs."""
    pairs = comparison_pairs(table.rows)
    for a, b in pairs:
        cells = _gain_cells(rs, a, b, table.columns[: len(sources)], sources, 0, pairing, table)
        table.rows.append(Row(f"{a.label} vs {b.label}", "summary", cells, summary=True))
    if pairs:
        table.notes.append(
            'Rows "X vs Y": how much better X is than Y in each column ("worse" when it is not).' + _CI_NOTE
        )
    return pairs


def lvef_estimation_table(rs: ResultSet, pairing: Pairing | None = None) -> Table:
    """LVEF MAE on the internal test split and on the external (second) site."""
    sources = [Source("lvef", "standard", c, "mae") for c in ("internal", "external")]
    columns = [Column("Internal test", FMT_MAE, "lower"), Column("External test", FMT_MAE, "lower")]
    return _grid_table("lvef_estimation", "LVEF Estimation", rs, columns, sources, pairing)


def parse_fraction(condition: str) -> float | None:
    """The labelled fraction of a sample-efficiency condition ("fraction=0.01" -> 0.01), else None."""
    name, sep, value = condition.partition("=")
    if not sep or name.strip() != "fraction":
        return None
    try:
        return float(value)
    except ValueError:
        return None


def is_fraction(target: float) -> Callable[[str], bool]:
    """A condition test: is this the sample-efficiency condition of that labelled fraction?"""

    def test(condition: str) -> bool:
        value = parse_fraction(condition)
        return value is not None and math.isclose(value, target, rel_tol=1e-6)

    return test


def sample_efficiency_table(rs: ResultSet, pairing: Pairing | None = None) -> Table:
    """View accuracy (mean ± sd over seeds) with 1%, 10% and 100% of the labelled training split."""
    sources = [Source("view", "sample_efficiency", is_fraction(f), "accuracy") for f, _ in SAMPLE_FRACTIONS]
    columns = [Column(label, FMT_PCT_PLAIN, "higher") for _, label in SAMPLE_FRACTIONS]
    title = "Sample Efficiency on View Classification"
    table = _grid_table("sample_efficiency", title, rs, columns, sources, pairing)
    table.notes.insert(0, "View accuracy (%), mean ± sd over seeds where more than one seed ran.")
    return table


def robustness_table(rs: ResultSet, pairing: Pairing | None = None) -> Table:
    """LVEF MAE on clean and degraded test videos; Avg. Deg. = mean of (MAE_deg - MAE) / MAE."""
    conditions = [("original", "Original", None, None), *ROBUSTNESS_CONDITIONS]
    sources = [Source("lvef", "robustness", c, "mae") for c, *_ in conditions]
    columns = [Column(label, FMT_MAE, "lower", group, short) for _, label, group, short in conditions]
    columns.append(Column("Avg. Deg. ↓", FMT_SIGNED_PCT, "lower"))
    rows = []
    for name, kind in _backbones(rs, sources):
        cells = _grid(rs, name, sources)
        rows.append(Row(name, kind, [*cells, Cell(value=average_degradation(cells[0], cells[1:]))]))
    table = Table("robustness", "Robustness to Acoustic Degradation", columns, rows)
    table.notes.append("Avg. Deg.: mean over the six degraded conditions of (MAE_deg - MAE) / MAE.")
    for a, b in _paired_rows(rs, table, sources, pairing):
        # the Avg. Deg. improvement: every condition of both backbones on the same resampled patients
        row = next(r for r in table.rows if r.label == f"{a.label} vs {b.label}" and r.summary)
        ca, cb = a.cells[-1], b.cells[-1]
        cell = Cell(fmt=FMT_GAIN_PTS)
        if ca.finite and cb.finite:
            cell.value = float(improvement(ca.value, cb.value, "lower"))
            if pairing is not None:
                try:
                    mine, theirs = robustness_records(rs, a.label), robustness_records(rs, b.label)
                    _set_paired(cell, degradation_gain(mine, theirs, "original", pairing))
                except PairingError as err:
                    _note_failures(table, a, b, [(columns[-1], str(err))])
        row.cells.append(cell)
    return table


def robustness_records(rs: ResultSet, backbone: str) -> dict[str, list[dict]]:
    """Condition -> this backbone's robustness records (seeds), for the original and the degraded
    conditions of the table."""
    return {
        c: [r for r in rs.select("lvef", "robustness", c) if r["backbone"] == backbone]
        for c in ("original", *(c for c, *_ in ROBUSTNESS_CONDITIONS))
    }


def average_degradation(original: Cell, degraded: list[Cell]) -> float | None:
    """Mean relative MAE increase over the degraded conditions; None unless every cell is present."""
    if not original.finite or original.value == 0 or not all(c.finite for c in degraded):
        return None
    return float(np.mean([(c.value - original.value) / original.value for c in degraded]))


def multiview_rvsp_table(rs: ResultSet, pairing: Pairing | None = None) -> Table:
    """RVSP MAE of a single-view probe vs the multi-view probe (and late fusion when it ran)."""
    conditions = [("single_view", "Single-view"), ("multi_view", "Multi-view")]
    if rs.select("rvsp", "standard", "late_fusion"):
        conditions.append(("late_fusion", "Late fusion"))
    sources = [Source("rvsp", "standard", c, "mae") for c, _ in conditions]
    columns = [Column(label, FMT_MAE, "lower") for _, label in conditions]
    return _grid_table("multiview_rvsp", "Multi-View RVSP Estimation", rs, columns, sources, pairing)


def pediatric_transfer_table(rs: ResultSet, pairing: Pairing | None = None) -> Table:
    """Pediatric LVEF MAE: the adult probe applied as is (zero-shot) and a probe retrained there."""
    conditions = [("zero_shot", "Zero-Shot"), ("fine_tuned", "Fine-Tuned")]
    sources = [Source("lvef", "pediatric_transfer", c, "mae") for c, _ in conditions]
    columns = [Column(label, FMT_MAE, "lower") for _, label in conditions]
    return _grid_table("pediatric_transfer", "Adult to Pediatric Transfer", rs, columns, sources, pairing)


BUILDERS = (
    controlled_comparison_table,
    lvef_estimation_table,
    sample_efficiency_table,
    robustness_table,
    multiview_rvsp_table,
    pediatric_transfer_table,
)


def build_tables(records: list[dict] | ResultSet, pairing: Pairing | None = None) -> list[Table]:
    """The six tables, in the seed's order; with ``pairing``, improvement cells carry paired CIs."""
    rs = records if isinstance(records, ResultSet) else ResultSet.from_records(records)
    return [builder(rs, pairing) for builder in BUILDERS]
