"""Validate a dataset on disk before training on it: tables, labels, splits and (optionally) decoding.

`check_dataset` reads the index with `on_error="skip"` so that every problem is collected rather than
the first one raised, then checks what a reader cannot: each file probes and its first and last frames
decode, no file is listed twice, no patient sits in two splits, views are known, ESV <= EDV, and a
listing table has rows. A row the reader skipped for its labels still has its file checked, so a
missing or broken file is not hidden behind a label error.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from echojepa.data.datasets import NOT_A_CINE, READERS, DatasetError, label_problem, read_index
from echojepa.data.index import SPLITS, DatasetIndex, Record

# EchoPrime's 11 and EchoJEPA's 13 coarse views, plus common short names; compared case-insensitively.
KNOWN_VIEWS: tuple[str, ...] = (
    "A2C",
    "A3C",
    "A4C",
    "A5C",
    "Apical_Doppler",
    "Doppler_Parasternal_Long",
    "Doppler_Parasternal_Short",
    "Parasternal_Long",
    "Parasternal_Short",
    "PLAX",
    "PSAX",
    "PSAX-AP",
    "PSAX-AV",
    "PSAX-MV",
    "PSAX-PM",
    "SSN",
    "Subcostal",
    "TEE",
    "Exclude",
    "Other",
)


@dataclass
class LabelStats:
    """Summary of one numeric label over all records (std: population, ddof = 0)."""

    n: int
    mean: float
    std: float
    min: float
    max: float


@dataclass
class CheckReport:
    """What `check_dataset` found. `ok` is True when `problems` is empty."""

    format: str
    root: str
    counts: dict[str, int] = field(default_factory=dict)  # records per split
    label_stats: dict[str, LabelStats] = field(default_factory=dict)  # numeric labels
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # text (class) labels
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # expected skips (non-cines)
    decoded: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        out = asdict(self)
        out["problems"] = [list(p) for p in self.problems]
        out["excluded"] = [list(p) for p in self.excluded]
        out["ok"] = self.ok
        return out

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)


def _label_summary(records: list[Record]) -> tuple[dict[str, LabelStats], dict[str, dict[str, int]]]:
    numbers: dict[str, list[float]] = defaultdict(list)
    classes: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        for name, value in r.labels.items():
            if isinstance(value, str):
                classes[name][value] += 1
            else:
                numbers[name].append(float(value))
    stats = {}
    for name, values in sorted(numbers.items()):
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
        stats[name] = LabelStats(n=n, mean=mean, std=std, min=min(values), max=max(values))
    return stats, {name: dict(sorted(c.items())) for name, c in sorted(classes.items())}


def _record_problems(index: DatasetIndex, known_views: set[str] | None) -> list[tuple[str, str]]:
    """Problems visible without opening files: labels, splits, views, duplicates, patient leaks."""
    problems = []
    seen: Counter = Counter(str(Path(r.path).resolve()) for r in index.records)
    splits_of: dict[str, set[str]] = defaultdict(set)
    for r in index.records:
        splits_of[r.patient].add(r.split)
    for r in index.records:
        path, key = str(r.path), str(Path(r.path).resolve())
        if r.split not in SPLITS:
            problems.append((path, f"unknown split {r.split!r}"))
        for name, value in r.labels.items():
            reason = label_problem(name, value)
            if reason:
                problems.append((path, reason))
        esv, edv = r.labels.get("esv"), r.labels.get("edv")
        if isinstance(esv, float) and isinstance(edv, float) and esv > edv:
            problems.append((path, f"label esv={esv:g} is larger than edv={edv:g} (ESV must be <= EDV)"))
        if r.view is not None and known_views is not None and r.view.lower() not in known_views:
            problems.append((path, f"unknown view {r.view!r}"))
        if seen[key] > 1:
            problems.append((path, f"listed {seen[key]} times (duplicate)"))
        splits = sorted(splits_of[r.patient])
        if len(splits) > 1:
            problems.append((path, f"patient {r.patient} is in several splits {splits}"))
    return problems


def _listing_tables(format: str, index: DatasetIndex, options: dict) -> list[Path]:
    """The tables that list a dataset's files (one per view for EchoNet-Pediatric)."""
    root = Path(index.root)
    if format == "echonet_pediatric":
        views = options.get("views", inspect.signature(READERS[format]).parameters["views"].default)
        return [root / v / "FileList.csv" for v in ([views] if isinstance(views, str) else views)]
    return {
        "echonet_dynamic": [root / "FileList.csv"],
        "mimic": [root / "echo-record-list.csv"],
        "csv": [root],  # the csv reader's root is the table itself
    }.get(format, [])


def _has_rows(table: Path) -> bool:
    with table.open(newline="", encoding="utf-8-sig") as f:  # the reader decoded it already
        rows = csv.reader(f)
        next(rows, None)  # the header
        return any(any(cell.strip() for cell in row) for row in rows)  # stops at the first row


def decode_problem(path: Path) -> str | None:
    """Why a file cannot be used as a cine (None when it probes and its first and last frames decode)."""
    from echojepa.io import read_video, video_info
    from echojepa.io.types import VideoReadError

    try:
        info = video_info(path)
        if info.frames <= 0:
            return "zero frames"
        if info.kind != "cine":
            return f"{NOT_A_CINE} (kind={info.kind})"
        last = info.frames - 1
        video = read_video(path, [0, last])
        if len(video.frames) != 2:
            return f"asked for frames [0, {last}], decoded {len(video.frames)}"
    except VideoReadError as e:
        return e.reason
    return None


def check_dataset(
    format: str,
    root: Path,
    *,
    decode: bool = True,
    known_views: Iterable[str] | None = KNOWN_VIEWS,
    workers: int = 1,
    **options,
) -> CheckReport:
    """Validate the dataset at `root` in layout `format`; reader `options` go to `read_index`.

    A structural error (missing table or column) becomes a problem of the report; a missing root
    raises FileNotFoundError. `known_views=None` accepts any view; `workers` decode files in threads.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: dataset root does not exist")
    options = {**options, "on_error": "skip"}
    report = CheckReport(format=format, root=str(root), decoded=decode)
    try:
        index = read_index(format, root, **options)
    except DatasetError as e:
        report.problems.append((e.path, e.reason))
        report.counts = {s: 0 for s in SPLITS}
        return report

    for table in _listing_tables(format, index, options):
        if table.is_file() and not _has_rows(table):
            report.problems.append((str(table), "the table has a header and no rows: it lists no files"))
    for file, reason in index.skipped:
        (report.excluded if reason.startswith(NOT_A_CINE) else report.problems).append((file, reason))
    views = {v.lower() for v in known_views} if known_views is not None else None
    report.problems.extend(_record_problems(index, views))
    # rows the reader skipped (a bad label, a leak) stopped before their file was looked at: look now
    missing = {f for f, reason in report.problems if reason.endswith("the file is missing")}
    skipped = [Path(f) for f, r in index.skipped if not r.startswith(NOT_A_CINE) and f not in missing]
    skipped = list(dict.fromkeys(skipped))
    report.problems.extend((str(p), "the file is missing") for p in skipped if not p.is_file())
    if decode:
        paths = list(dict.fromkeys([r.path for r in index.records] + [p for p in skipped if p.is_file()]))
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            reasons = list(pool.map(decode_problem, paths))
        report.problems.extend((str(p), reason) for p, reason in zip(paths, reasons) if reason)
    report.problems = list(dict.fromkeys(report.problems))  # a probe failure the reader already named
    report.counts = index.counts()
    report.label_stats, report.class_counts = _label_summary(index.records)
    return report
