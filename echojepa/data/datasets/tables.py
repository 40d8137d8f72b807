"""Small parsers every reader shares: CSV tables, number and label cells, tracing frames, file names.

They stay in one place so that every layout treats bad rows alike: the same label range checks
(`LABEL_RANGES`), the same messages, the same structural errors for a missing file or column.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from echojepa.data.datasets.errors import DatasetError

# Plausible physical ranges of the labels the readers know; a value outside is a bad row.
LABEL_RANGES: dict[str, tuple[float, float]] = {
    "ef": (0.0, 100.0),
    "rvsp": (0.0, 150.0),
    "esv": (0.0, math.inf),
    "edv": (0.0, math.inf),
}


def read_table(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; a missing file or column is a structural error (always raised)."""
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in required if c not in columns]
            if missing:
                raise DatasetError(path, f"missing column(s) {missing}; found {columns}")
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except UnicodeDecodeError as e:  # the codec's message names no file
        bad = e.object[e.start : e.start + 1].hex()
        raise DatasetError(path, f"not UTF-8 text (undecodable byte 0x{bad}); save it as UTF-8") from None


def parse_number(text: str, name: str) -> float | None:
    """A float from a table cell, None when the cell is empty; raises ValueError with the reason."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"label {name}={text!r} is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"label {name}={text!r} is not a finite number")
    return value


def label_problem(name: str, value: float | str) -> str | None:
    """Why a label value is unusable (None when fine): non-finite or outside `LABEL_RANGES`."""
    if isinstance(value, str):
        return None if value else f"label {name} is empty"
    if math.isnan(value) or math.isinf(value):
        return f"label {name}={value} is not a finite number"
    lo, hi = LABEL_RANGES.get(name, (-math.inf, math.inf))
    if not lo <= value <= hi:
        return f"label {name}={value:g} outside the range [{lo:g}, {hi:g}]"
    return None


def parse_labels(row: dict[str, str], columns: dict[str, str], required: bool) -> dict[str, float]:
    """Numeric labels {name: value} from `columns` {label name: column}; raises ValueError if bad."""
    out: dict[str, float] = {}
    for name, column in columns.items():
        value = parse_number(row.get(column, ""), name)
        if value is None:
            if required:
                raise ValueError(f"label {name} is missing")
            continue
        problem = label_problem(name, value)
        if problem:
            raise ValueError(problem)
        out[name] = value
    return out


def require_root(root: Path) -> Path:
    """The dataset root, resolved; a `DatasetError` when it does not exist."""
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise DatasetError(root, "dataset root does not exist")
    return root


def traced_frames(rows: Iterable[dict[str, str]]) -> tuple[dict[str, set[int]], dict[str, set[str]]]:
    """Per file name: the traced frame numbers, and any non-numeric Frame notes ('No Systolic')."""
    frames: dict[str, set[int]] = defaultdict(set)
    notes: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        name, frame = row["FileName"], row["Frame"]
        try:
            frames[name].add(int(float(frame)))
        except ValueError:
            if frame:
                notes[name].add(frame)
    return frames, notes


def with_avi(name: str) -> str:
    """`name` with `.avi` appended unless it already ends so (any case)."""
    return name if name.lower().endswith(".avi") else f"{name}.avi"
