"""Candidate pretraining recipes side by side, as the online probes saw them (`Study.trials`).

Each trial is a pretraining run whose online_probe.csv holds the encoder's validation view accuracy and
EF MAE at fixed steps, with the random-init encoder, pixel statistics and the trivial predictor measured
on the same subsets. This module reads one trial into a plain record and lays several out as a table;
it chooses nothing (the study config says which recipe it took and on which figure).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from echojepa.report.plots import read_online_probe_csv
from echojepa.report.render import format_value
from echojepa.report.tables import FMT_MAE, FMT_PCT


def read_trial(run_dir: Path, pretrain: str, overrides: list[str]) -> dict[str, Any]:
    """One trial's record: its overrides, length, speed, final loss, the online-probe curve of every
    metric and the references (all validation figures)."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    curves, references = read_online_probe_csv(run_dir / "online_probe.csv")
    return {
        "pretrain": pretrain,
        "overrides": list(overrides),
        "steps": summary.get("steps"),
        "elapsed_s": summary.get("elapsed_s"),
        "final_loss": summary.get("final_loss"),
        "curves": {m: {"steps": s.tolist(), "values": v.tolist()} for m, (s, v) in curves.items()},
        "references": references,
    }


def _final(trial: dict[str, Any], metric: str) -> float | None:
    values = trial["curves"].get(metric, {}).get("values") or []
    return values[-1] if values else None


def _best(trial: dict[str, Any], metric: str) -> float | None:
    values = trial["curves"].get(metric, {}).get("values") or []
    if not values:
        return None
    return max(values) if metric.endswith("_acc") else min(values)


def _fmt(x: float | None, pct: bool) -> str:
    return "—" if x is None else format_value(x, FMT_PCT if pct else FMT_MAE)


def recipes_table(trials: dict[str, dict[str, Any]]) -> Table:
    """Recipe | overrides | steps | s/step | loss | view acc (final, best) | EF MAE (final, best), and a
    last row of the references (random-init encoder, pixel statistics, trivial) of the first trial."""
    table = Table(title="Pretraining recipes on the online probes (validation subsets)")
    for col in ("recipe", "overrides", "steps", "s/step", "final loss", "view acc", "best", "EF MAE", "best"):
        table.add_column(col, overflow="fold")
    for name, t in trials.items():
        steps = t.get("steps") or 0
        per_step = f"{t['elapsed_s'] / steps:.3f}" if steps and t.get("elapsed_s") else "—"
        loss = f"{t['final_loss']:.3f}" if t.get("final_loss") is not None else "—"
        table.add_row(
            name,
            " ".join(t["overrides"]) or "(the study's)",
            str(steps),
            per_step,
            loss,
            _fmt(_final(t, "view_acc"), True),
            _fmt(_best(t, "view_acc"), True),
            _fmt(_final(t, "ef_mae"), False),
            _fmt(_best(t, "ef_mae"), False),
        )
    first = next(iter(trials.values()), None)
    for source, refs in (first or {}).get("references", {}).items():
        view, ef = refs.get("view_acc"), refs.get("ef_mae")
        blank = ("", "", "")
        table.add_row(f"[dim]{source}[/dim]", "reference", *blank, _fmt(view, True), "", _fmt(ef, False), "")
    return table
