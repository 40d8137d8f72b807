"""Render `Table`s as Markdown and HTML (with bootstrap CIs) or as rich tables (plain values).

Missing cells show as "—". The best value of each column that has a direction (lower/higher is
better) is emphasised, as in the seed's tables; derived rows (Relative Improvement) are italic.
"""

from __future__ import annotations

import html

from rich.markup import escape as rich_escape
from rich.table import Table as RichTable

from echojepa.report.tables import (
    FMT_GAIN,
    FMT_GAIN_PCT,
    FMT_GAIN_PTS,
    FMT_MAE,
    FMT_PCT,
    FMT_PCT_PLAIN,
    FMT_PTS,
    FMT_SIGNED,
    FMT_SIGNED_PCT,
    Cell,
    Column,
    Table,
)

MISSING = "—"


def format_value(value: float, fmt: str) -> str:
    if fmt in (FMT_GAIN, FMT_GAIN_PCT, FMT_GAIN_PTS):
        return format_gain(value, fmt)
    if fmt == FMT_MAE:
        return f"{value:.2f}"
    if fmt == FMT_SIGNED:
        return f"{value:+.2f}"
    if fmt == FMT_PCT:
        return f"{100 * value:.1f}%"
    if fmt == FMT_PCT_PLAIN:
        return f"{100 * value:.1f}"
    if fmt == FMT_SIGNED_PCT:
        return f"{100 * value:+.1f}%"
    if fmt == FMT_PTS:
        return f"{100 * value:+.1f} pts"
    raise ValueError(f"unknown cell format {fmt!r}")


def _gain_magnitude(value: float, fmt: str, sign: str = "") -> str:
    if fmt == FMT_GAIN:
        return f"{value:{sign}.2f}"
    return f"{100 * value:{sign}.1f}" + ("%" if fmt == FMT_GAIN_PCT else " pts")


def format_gain(value: float, fmt: str) -> str:
    """An improvement in words, so better reads as better: 0.034 -> "3.4% better", -0.034 -> "3.4% worse"."""
    text = _gain_magnitude(abs(value), fmt)
    if not any(ch in "123456789" for ch in text):
        return f"{text} (no difference)"
    return f"{text} {'better' if value > 0 else 'worse'}"


def format_ci(lo: float, hi: float, fmt: str) -> str:
    """A CI in brackets; an improvement's CI signed (+ = better), as words would not fit."""
    if fmt in (FMT_GAIN, FMT_GAIN_PCT, FMT_GAIN_PTS):
        return f"[{_gain_magnitude(lo, fmt, '+')}, {_gain_magnitude(hi, fmt, '+')}]"
    return f"[{format_value(lo, fmt)}, {format_value(hi, fmt)}]"


def _spread(value: float, fmt: str) -> str:
    # An sd is a width, not a value: no sign and no unit suffix.
    return f"{value:.2f}" if fmt in (FMT_MAE, FMT_SIGNED) else f"{100 * value:.1f}"


def format_cell(cell: Cell, column: Column, ci: bool = True) -> str:
    """Text of one cell: "5.12", "5.12 [4.80, 5.45]" (one run, with CI), "57.6 ± 0.7" (seeds), "—"."""
    if cell.is_text:
        return cell.text or ""
    if not cell.finite:
        return MISSING
    fmt = cell.fmt or column.fmt
    text = format_value(cell.value, fmt)
    if cell.sd is not None and cell.n_seeds > 1:
        text += f" ± {_spread(cell.sd, fmt)}"
    elif ci and cell.ci is not None:
        text += f" {format_ci(*cell.ci, fmt)}"
    return text


def best_rows(table: Table) -> dict[int, set[int]]:
    """Column index -> indices of the rows holding that column's best value (ties all count)."""
    out: dict[int, set[int]] = {}
    for j, column in enumerate(table.columns):
        if column.better not in ("lower", "higher"):
            continue
        values = [
            (i, row.cells[j].value)
            for i, row in enumerate(table.rows)
            if not row.summary and row.cells[j].finite and not row.cells[j].is_text
        ]
        if not values:
            continue
        pick = min if column.better == "lower" else max
        best = pick(v for _, v in values)
        out[j] = {i for i, v in values if v == best}
    return out


def _header(column: Column) -> str:
    return f"{column.group} {column.header}" if column.group else column.header


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table, ci: bool = True, level: int = 3) -> str:
    """A Markdown section: heading, pipe table (grouped headers flattened), missing count, notes."""
    best = best_rows(table)
    lines = [f"{'#' * level} {table.title}", ""]
    if not table.rows:
        lines += ["_No results for this table yet._", ""]
        return "\n".join(lines)
    headers = ["Model", *(_header(c) for c in table.columns)]
    lines.append("| " + " | ".join(_md_escape(h) for h in headers) + " |")
    aligns = ["---", *("---" if c.fmt == "text" else "---:" for c in table.columns)]
    lines.append("| " + " | ".join(aligns) + " |")
    for i, row in enumerate(table.rows):
        texts = [_md_escape(row.label)]
        for j, (column, cell) in enumerate(zip(table.columns, row.cells)):
            text = _md_escape(format_cell(cell, column, ci))
            if i in best.get(j, ()):
                text = f"**{text}**"
            texts.append(text)
        if row.summary:
            texts = [f"*{t}*" if t and t != MISSING else t for t in texts]
        lines.append("| " + " | ".join(texts) + " |")
    lines.append("")
    if table.missing:
        lines += [f"_Missing cells: {table.missing}._", ""]
    lines += [f"_{_md_escape(note)}_\n" for note in table.notes]
    return "\n".join(lines)


def to_html(table: Table, ci: bool = True) -> str:
    """An HTML fragment: <h3> title, <table> (two header rows when columns are grouped), notes."""
    esc = html.escape
    best = best_rows(table)
    parts = [f"<h3>{esc(table.title)}</h3>"]
    if not table.rows:
        parts.append("<p><em>No results for this table yet.</em></p>")
        return "\n".join(parts)
    grouped = any(c.group for c in table.columns)
    parts.append("<table>\n<thead>")
    if grouped:
        top = ['<th rowspan="2">Model</th>']
        j = 0
        while j < len(table.columns):
            column = table.columns[j]
            if column.group is None:
                top.append(f'<th rowspan="2">{esc(column.header)}</th>')
                j += 1
                continue
            span = 1
            while j + span < len(table.columns) and table.columns[j + span].group == column.group:
                span += 1
            top.append(f'<th colspan="{span}">{esc(column.group)}</th>')
            j += span
        sub = [f"<th>{esc(c.header)}</th>" for c in table.columns if c.group]
        parts.append("<tr>" + "".join(top) + "</tr>")
        parts.append("<tr>" + "".join(sub) + "</tr>")
    else:
        heads = ["Model", *(c.header for c in table.columns)]
        parts.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in heads) + "</tr>")
    parts.append("</thead>\n<tbody>")
    for i, row in enumerate(table.rows):
        cells = [f"<td>{esc(row.label)}</td>"]
        for j, (column, cell) in enumerate(zip(table.columns, row.cells)):
            text = esc(format_cell(cell, column, ci))
            if i in best.get(j, ()):
                text = f"<b>{text}</b>"
            css = ' class="missing"' if not cell.is_text and not cell.finite else ""
            cells.append(f"<td{css}>{text}</td>")
        css = ' class="summary"' if row.summary else ""
        parts.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    parts.append("</tbody>\n</table>")
    if table.missing:
        parts.append(f'<p class="note">Missing cells: {table.missing}.</p>')
    parts += [f'<p class="note">{esc(note)}</p>' for note in table.notes]
    return "\n".join(parts)


def to_rich(table: Table) -> RichTable:
    """A rich table for the terminal: plain values (± sd over seeds), no CIs."""
    out = RichTable(title=table.title, title_justify="left")
    out.add_column("Model", no_wrap=True)
    for column in table.columns:
        group = column.short_group or column.group
        header = f"{group}\n{column.header}" if group else column.header
        out.add_column(rich_escape(header), justify="left" if column.fmt == "text" else "right")
    best = best_rows(table)
    for i, row in enumerate(table.rows):
        texts = [rich_escape(row.label)]
        for j, (column, cell) in enumerate(zip(table.columns, row.cells)):
            text = rich_escape(format_cell(cell, column, ci=False))
            texts.append(f"[bold]{text}[/bold]" if i in best.get(j, ()) else text)
        out.add_row(*texts, style="italic" if row.summary else None)
    if not table.rows:
        out.caption = "no results yet"
    elif table.missing:
        out.caption = f"missing cells: {table.missing}"
    return out
