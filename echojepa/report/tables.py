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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

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
    "controlled_comparison",
    "load_records",
    "lvef_estimation",
    "multiview_rvsp",
    "pediatric_transfer",
    "robustness",
    "sample_efficiency",
]

# Cell formats (rendering lives in render.py; the names say what the stored number means).
FMT_MAE = "mae"  # a value in its own units (EF points, mmHg)
FMT_PCT = "pct"  # a fraction shown as a percentage with a sign: 0.855 -> 85.5%
FMT_PCT_PLAIN = "pct_plain"  # a fraction shown as a bare percentage number: 0.576 -> 57.6
FMT_SIGNED_PCT = "signed_pct"  # a relative change: -0.267 -> -26.7%
FMT_PTS = "pts"  # a difference of fractions in percentage points: 0.451 -> +45.1 pts
FMT_TEXT = "text"

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
        """Number cells without a finite value."""
        return sum(1 for row in self.rows for cell in row.cells if not cell.is_text and not cell.finite)

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


def _grid_table(key: str, title: str, rs: ResultSet, columns: list[Column], sources: list[Source]) -> Table:
    rows = [Row(name, kind, _grid(rs, name, sources)) for name, kind in _backbones(rs, sources)]
    return Table(key, title, columns, rows)


def controlled_comparison(rs: ResultSet) -> Table:
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
    jepa = next((r for r in rows if r.kind == "jepa"), None)
    mae = next((r for r in rows if r.kind == "mae"), None)
    if jepa is not None and mae is not None:
        table.rows.append(_relative_improvement(jepa, mae))
        table.notes.append(
            f"Relative Improvement: {jepa.label} vs {mae.label}; LVEF as relative change of MAE, "
            "view accuracy as difference in percentage points."
        )
    return table


def _relative_improvement(jepa: Row, mae: Row) -> Row:
    (j_mae, j_acc), (m_mae, m_acc) = jepa.cells[1:], mae.cells[1:]
    rel = (j_mae.value - m_mae.value) / m_mae.value if j_mae.finite and m_mae.finite else None
    pts = j_acc.value - m_acc.value if j_acc.finite and m_acc.finite else None
    cells = [
        Cell(text=f"{jepa.label} vs {mae.label}"),
        Cell(value=rel, fmt=FMT_SIGNED_PCT),
        Cell(value=pts, fmt=FMT_PTS),
    ]
    return Row("Relative Improvement", "summary", cells, summary=True)


def lvef_estimation(rs: ResultSet) -> Table:
    """LVEF MAE on the internal test split and on the external (second) site."""
    sources = [Source("lvef", "standard", c, "mae") for c in ("internal", "external")]
    columns = [Column("Internal test", FMT_MAE, "lower"), Column("External test", FMT_MAE, "lower")]
    return _grid_table("lvef_estimation", "LVEF Estimation", rs, columns, sources)


def parse_fraction(condition: str) -> float | None:
    """The labelled fraction of a sample-efficiency condition ("fraction=0.01" -> 0.01), else None."""
    name, sep, value = condition.partition("=")
    if not sep or name.strip() != "fraction":
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _is_fraction(target: float) -> Callable[[str], bool]:
    def test(condition: str) -> bool:
        value = parse_fraction(condition)
        return value is not None and math.isclose(value, target, rel_tol=1e-6)

    return test


def sample_efficiency(rs: ResultSet) -> Table:
    """View accuracy (mean ± sd over seeds) with 1%, 10% and 100% of the labelled training split."""
    sources = [Source("view", "sample_efficiency", _is_fraction(f), "accuracy") for f, _ in SAMPLE_FRACTIONS]
    columns = [Column(label, FMT_PCT_PLAIN, "higher") for _, label in SAMPLE_FRACTIONS]
    table = _grid_table("sample_efficiency", "Sample Efficiency on View Classification", rs, columns, sources)
    table.notes.append("View accuracy (%), mean ± sd over seeds where more than one seed ran.")
    return table


def robustness(rs: ResultSet) -> Table:
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
    return table


def average_degradation(original: Cell, degraded: list[Cell]) -> float | None:
    """Mean relative MAE increase over the degraded conditions; None unless every cell is present."""
    if not original.finite or original.value == 0 or not all(c.finite for c in degraded):
        return None
    return float(np.mean([(c.value - original.value) / original.value for c in degraded]))


def multiview_rvsp(rs: ResultSet) -> Table:
    """RVSP MAE of a single-view probe vs the multi-view probe (and late fusion when it ran)."""
    conditions = [("single_view", "Single-view"), ("multi_view", "Multi-view")]
    if rs.select("rvsp", "standard", "late_fusion"):
        conditions.append(("late_fusion", "Late fusion"))
    sources = [Source("rvsp", "standard", c, "mae") for c, _ in conditions]
    columns = [Column(label, FMT_MAE, "lower") for _, label in conditions]
    return _grid_table("multiview_rvsp", "Multi-View RVSP Estimation", rs, columns, sources)


def pediatric_transfer(rs: ResultSet) -> Table:
    """Pediatric LVEF MAE: the adult probe applied as is (zero-shot) and a probe retrained there."""
    conditions = [("zero_shot", "Zero-Shot"), ("fine_tuned", "Fine-Tuned")]
    sources = [Source("lvef", "pediatric_transfer", c, "mae") for c, _ in conditions]
    columns = [Column(label, FMT_MAE, "lower") for _, label in conditions]
    return _grid_table("pediatric_transfer", "Adult to Pediatric Transfer", rs, columns, sources)


BUILDERS = (
    controlled_comparison,
    lvef_estimation,
    sample_efficiency,
    robustness,
    multiview_rvsp,
    pediatric_transfer,
)


def build_tables(records: list[dict] | ResultSet) -> list[Table]:
    """The six tables, in the seed's order."""
    rs = records if isinstance(records, ResultSet) else ResultSet.from_records(records)
    return [builder(rs) for builder in BUILDERS]
