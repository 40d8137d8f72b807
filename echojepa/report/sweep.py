"""A Hydra multirun probe sweep as tables: one row per setting, with the validation metric the head was
selected on and the chosen head's test metric.

Read from the MLflow store the sweep's jobs logged to (echojepa.probe.runner.log_to_mlflow): each
record's run carries the sweep folder, the job number and the job's overrides as tags
(echojepa.tracking.hydra_job_tags), the same metric keys in every run (``val/<metric>``,
``test/<metric>`` with ``_ci_low`` / ``_ci_high``) and the chosen head as params. A setting is named by
the overrides that differ between the sweep's jobs; one table per task, protocol and condition.
Records without a chosen head (the trivial floors) have no selection and are left out.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from echojepa.tracking import OVERRIDES_TAG, RECORD_TAG, SWEEP_JOB_TAG, SWEEP_TAG, sqlite_path

__all__ = ["EXPERIMENT", "LATEST", "SweepError", "SweepRow", "load_sweep", "print_sweep", "sweep_tables"]

LATEST = "latest"  # the sweep whose runs started last
EXPERIMENT = "echojepa-probe"  # conf/evaluate.yaml: mlflow.experiment_name


class SweepError(ValueError):
    """The store, experiment or sweep asked for is not there (one line: what and where)."""


@dataclass(frozen=True)
class SweepRow:
    """One record of one sweep job: its setting, the selection's validation metric, the test metric."""

    job: int
    setting: str  # the job's overrides that vary across the sweep ("" when none vary)
    task: str
    protocol: str
    condition: str
    backbone: str
    seed: str
    selected_on: str  # the validation metric the chosen head was selected on
    val: float | None
    test: float | None  # the chosen head's test value of that same metric
    test_ci: tuple[float, float] | None
    lr: str | None
    wd: str | None


def _runs(uri: str, experiment: str) -> list[Any]:
    """Every run of ``experiment`` logged from a results record inside a multirun sweep."""
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise SweepError(f"{db}: no MLflow tracking database there")  # MLflow would create an empty one
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SweepError(f"{uri}: no MLflow experiment {experiment!r}")
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{SWEEP_TAG}` LIKE '%'",
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        runs += [r for r in page if RECORD_TAG in r.data.tags]
        token = page.token
        if not token:
            return runs


def _pick(runs: list[Any], sweep: str, uri: str) -> str:
    """The sweep id (an absolute sweep folder) named by ``sweep``: a folder, or LATEST."""
    known = list(dict.fromkeys(r.data.tags[SWEEP_TAG] for r in runs))  # newest first
    if not known:
        raise SweepError(f"{uri}: no probe runs from a multirun sweep (echojepa-probe -m ...)")
    if sweep == LATEST:
        return known[0]
    for candidate in (sweep, str(Path(sweep).expanduser().resolve())):
        if candidate in known:
            return candidate
    raise SweepError(f"{uri}: no sweep {sweep!r}; sweeps there, newest first: {', '.join(known[:5])}")


def _overrides(run: Any) -> dict[str, str]:
    """The job's overrides as key -> value (``+key=v`` and ``key=v`` alike)."""
    out = {}
    for item in json.loads(run.data.tags.get(OVERRIDES_TAG, "[]")):
        key, _, value = item.partition("=")
        out[key.lstrip("+~")] = value
    return out


def _varying(jobs: Iterable[dict[str, str]]) -> list[str]:
    """Override keys whose value is not the same in every job, in first-seen order."""
    jobs = list(jobs)
    keys = list(dict.fromkeys(k for job in jobs for k in job))
    return [k for k in keys if len({job.get(k) for job in jobs}) > 1]


def load_sweep(uri: str, sweep: str = LATEST, experiment: str = EXPERIMENT) -> tuple[str, list[SweepRow]]:
    """The sweep's id and its rows (by task, protocol, condition, then job), from the store at ``uri``."""
    runs = _runs(uri, experiment)
    sweep_id = _pick(runs, sweep, uri)
    runs = [r for r in runs if r.data.tags[SWEEP_TAG] == sweep_id and "selection_metric" in r.data.params]
    jobs = {r.data.tags.get(SWEEP_JOB_TAG, "0"): _overrides(r) for r in runs}
    varying = _varying(jobs.values())
    rows = []
    for run in runs:
        p, m = run.data.params, run.data.metrics
        job = run.data.tags.get(SWEEP_JOB_TAG, "0")
        metric = p["selection_metric"]
        low, high = m.get(f"test/{metric}_ci_low"), m.get(f"test/{metric}_ci_high")
        rows.append(SweepRow(
            job=int(job), setting=" ".join(f"{k}={jobs[job][k]}" for k in varying if k in jobs[job]),
            task=p.get("task", ""), protocol=p.get("protocol", ""), condition=p.get("condition", ""),
            backbone=p.get("backbone", ""), seed=p.get("seed", ""), selected_on=metric,
            val=m.get(f"val/{metric}"), test=m.get(f"test/{metric}"),
            test_ci=None if low is None or high is None else (float(low), float(high)),
            lr=p.get("chosen_lr"), wd=p.get("chosen_wd"),
        ))  # fmt: skip
    rows.sort(key=lambda r: (r.task, r.protocol, r.condition, r.job, r.backbone, r.seed))
    return sweep_id, rows


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def sweep_tables(rows: list[SweepRow]) -> list[Table]:
    """One rich table per task / protocol / condition, one row per setting."""
    groups: dict[tuple[str, str, str], list[SweepRow]] = defaultdict(list)
    for row in rows:
        groups[(row.task, row.protocol, row.condition)].append(row)
    tables = []
    for (task, protocol, condition), group in groups.items():
        table = Table(title=f"sweep: {task} / {protocol} / {condition}", title_justify="left")
        for column in ("job", "setting", "backbone", "seed", "selected on", "val", "test", "test CI",
                       "lr", "wd"):  # fmt: skip
            table.add_column(column, justify="right" if column in ("job", "val", "test") else "left")
        for r in group:
            ci = "—" if r.test_ci is None else f"[{_fmt(r.test_ci[0])}, {_fmt(r.test_ci[1])}]"
            table.add_row(
                str(r.job), r.setting or "—", r.backbone, r.seed, r.selected_on, _fmt(r.val), _fmt(r.test),
                ci, r.lr or "—", r.wd or "—",
            )  # fmt: skip
        tables.append(table)
    return tables


def print_sweep(
    uri: str, sweep: str = LATEST, experiment: str = EXPERIMENT, console: Console | None = None
) -> list[SweepRow]:
    """Print the sweep's tables (headed by its folder) and return its rows."""
    console = console or Console()
    sweep_id, rows = load_sweep(uri, sweep, experiment)
    console.print(f"sweep {sweep_id}: {len({r.job for r in rows})} setting(s), {len(rows)} row(s)")
    for table in sweep_tables(rows):
        console.print(table)
    return rows
