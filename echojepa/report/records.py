"""The results store as the report reads it: one JSON record per probe evaluation.

Layout (written by the probe runner): `<store>/records/<task>/<protocol>/<backbone>/<name>.json`, with
predictions CSVs beside them. Every record is validated against the schema on load; a record that
does not fit stops the report with a `RecordError` naming the file and the reason, because a table
built from half-understood results is worse than no table.

Records that repeat the same evaluation (task, protocol, backbone, condition, seed), for example after
a re-run with a changed config, are not averaged: the newest (`created`) wins and the superseded ones
are counted, so the report can say how many it set aside.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

TASKS = ("lvef", "view", "rvsp")
PROTOCOLS = ("standard", "sample_efficiency", "robustness", "pediatric_transfer")
# Row order of every table: floors first, then the two objectives under comparison, then the rest.
KIND_ORDER = ("trivial", "pixel_stats", "random", "mae", "jepa")

_STR_KEYS = ("backbone", "backbone_kind", "task", "protocol", "condition", "split", "dataset", "config_hash")
_INT_KEYS = ("n", "seed")
_OPTIONAL_PATH_KEYS = ("predictions_csv", "probe_checkpoint")
_CHOSEN_KEYS = {"head": int, "lr": float, "wd": float, "val_metric": float, "val_name": str}


class RecordError(ValueError):
    """A results record that cannot be used, with the file it came from."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _check_metric(name: str, entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return f"metrics[{name!r}] must be an object with 'value', got {type(entry).__name__}"
    if "value" not in entry or not _is_number(entry["value"]):
        return f"metrics[{name!r}]['value'] must be a number"
    ci = entry.get("ci")
    if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(_is_number(c) for c in ci)):
        return f"metrics[{name!r}]['ci'] must be [lo, hi] numbers or null"
    return None


def _check_chosen(chosen: Any) -> str | None:
    # A trivial baseline (train mean / majority class) has no head to choose: null is allowed.
    if chosen is None:
        return None
    if not isinstance(chosen, dict):
        return "'chosen' must be an object or null"
    for key, typ in _CHOSEN_KEYS.items():
        if key not in chosen:
            return f"'chosen' lacks {key!r}"
        value = chosen[key]
        if typ is str:
            ok = isinstance(value, str)
        elif typ is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = _is_number(value)
        if not ok:
            return f"'chosen'[{key!r}] must be {typ.__name__}, got {value!r}"
    return None


def schema_problem(record: Any) -> str | None:
    """Why `record` does not fit the results-record schema, or None when it does."""
    if not isinstance(record, dict):
        return f"a record must be a JSON object, got {type(record).__name__}"
    for key in _STR_KEYS:
        if not isinstance(record.get(key), str) or not record[key]:
            return f"{key!r} must be a non-empty string"
    for key in _INT_KEYS:
        value = record.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{key!r} must be an integer"
    if record["task"] not in TASKS:
        return f"unknown task {record['task']!r} (expected one of {', '.join(TASKS)})"
    if record["protocol"] not in PROTOCOLS:
        return f"unknown protocol {record['protocol']!r} (expected one of {', '.join(PROTOCOLS)})"
    if record["split"] != "test":
        return f"split must be 'test' (the report shows test results only), got {record['split']!r}"
    metrics = record.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return "'metrics' must be a non-empty object"
    for name, entry in metrics.items():
        problem = _check_metric(name, entry)
        if problem:
            return problem
    if "chosen" not in record:
        return "'chosen' is missing (use null for a baseline without heads)"
    problem = _check_chosen(record["chosen"])
    if problem:
        return problem
    created = record.get("created")
    if not isinstance(created, str):
        return "'created' must be an ISO timestamp string"
    try:
        datetime.fromisoformat(created)
    except ValueError:
        return f"'created' is not an ISO timestamp: {created!r}"
    for key in _OPTIONAL_PATH_KEYS:
        if key not in record:
            return f"{key!r} is missing (use null when there is none)"
        if record[key] is not None and not isinstance(record[key], str):
            return f"{key!r} must be a path string or null"
    if not isinstance(record.get("extra"), dict):
        return "'extra' must be an object"
    return None


def load_records(store: Path) -> list[dict]:
    """Every record under `<store>/records`, validated, sorted by file path.

    Each returned dict is the JSON record plus `_file` (the absolute path it was read from), which
    resolves its predictions CSV. Raises FileNotFoundError when the store has no `records/` folder and
    `RecordError` naming the first file that is not valid JSON or does not fit the schema.
    """
    root = Path(store) / "records"
    if not root.is_dir():
        raise FileNotFoundError(f"{store}: not a results store (no records/ folder)")
    records = []
    for path in sorted(root.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as err:
            raise RecordError(path, f"cannot read: {err}") from err
        except json.JSONDecodeError as err:
            raise RecordError(path, f"not valid JSON ({err})") from err
        problem = schema_problem(record)
        if problem:
            raise RecordError(path, problem)
        record["_file"] = str(path.resolve())
        records.append(record)
    return records


def metric_value(record: dict, metric: str) -> float | None:
    """The metric's value, or None when the record lacks it or it is not finite (counted as missing)."""
    entry = record["metrics"].get(metric)
    if entry is None or not math.isfinite(entry["value"]):
        return None
    return float(entry["value"])


def metric_ci(record: dict, metric: str) -> tuple[float, float] | None:
    entry = record["metrics"].get(metric)
    if entry is None or entry.get("ci") is None:
        return None
    lo, hi = entry["ci"]
    return float(lo), float(hi)


@dataclass
class ResultSet:
    """Deduplicated records plus how many older duplicates were set aside."""

    records: list[dict]
    superseded: int = 0

    @classmethod
    def from_records(cls, records: list[dict]) -> ResultSet:
        newest: dict[tuple, dict] = {}
        superseded = 0
        for record in records:
            key = tuple(record[k] for k in ("task", "protocol", "backbone", "condition", "seed"))
            other = newest.get(key)
            if other is not None:
                superseded += 1
                if datetime.fromisoformat(other["created"]) >= datetime.fromisoformat(record["created"]):
                    continue
            newest[key] = record
        kinds: dict[str, str] = {}
        for record in newest.values():
            previous = kinds.setdefault(record["backbone"], record["backbone_kind"])
            if previous != record["backbone_kind"]:
                raise RecordError(
                    record.get("_file", "<record>"),
                    f"backbone {record['backbone']!r} has kind {record['backbone_kind']!r} here but "
                    f"{previous!r} in another record",
                )
        return cls(sorted(newest.values(), key=lambda r: r.get("_file", "")), superseded)

    def select(self, task: str, protocol: str, condition: str | None = None) -> list[dict]:
        return [
            r
            for r in self.records
            if r["task"] == task
            and r["protocol"] == protocol
            and (condition is None or r["condition"] == condition)
        ]

    def kind_of(self, backbone: str) -> str:
        for record in self.records:
            if record["backbone"] == backbone:
                return record["backbone_kind"]
        raise KeyError(backbone)


def kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def order_backbones(pairs: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """(backbone, kind) pairs in report row order: by kind (KIND_ORDER, others last), then by name."""
    return sorted(
        pairs, key=lambda p: (kind_rank(p[1]), p[1] if kind_rank(p[1]) == len(KIND_ORDER) else "", p[0])
    )


def resolve_csv(record: dict, store: Path) -> Path | None:
    """Where the record's predictions CSV is: absolute as given, else beside the record, else under the
    store root. None when the record names none; FileNotFoundError (naming both) when it is absent."""
    name = record.get("predictions_csv")
    if name is None:
        return None
    path = Path(name)
    if path.is_absolute():
        candidates = [path]
    else:
        here = Path(record["_file"]).parent if "_file" in record else Path(store)
        candidates = [here / path, Path(store) / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{record.get('_file', '<record>')}: predictions CSV {name!r} not found "
        f"(looked at {', '.join(str(c) for c in candidates)})"
    )
