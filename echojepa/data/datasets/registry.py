"""The format registry: `READERS` maps a format name to its reader; `read_index` dispatches by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from echojepa.data.datasets.csv_index import read_csv_index
from echojepa.data.datasets.echonet_dynamic import read_echonet_dynamic
from echojepa.data.datasets.echonet_pediatric import read_echonet_pediatric
from echojepa.data.datasets.mimic import read_mimic
from echojepa.data.index import DatasetIndex

READERS: dict[str, Callable[..., DatasetIndex]] = {
    "echonet_dynamic": read_echonet_dynamic,
    "echonet_pediatric": read_echonet_pediatric,
    "mimic": read_mimic,
    "csv": read_csv_index,
}


def read_index(format: str, root: Path, **options) -> DatasetIndex:
    """Read a dataset index with the reader registered for `format` (see `READERS`)."""
    reader = READERS.get(format)
    if reader is None:
        raise ValueError(f"unknown dataset format {format!r}; valid formats: {sorted(READERS)}")
    accepted = [p for p in inspect.signature(reader).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"format {format!r} has no option(s) {unknown}; valid options: {accepted}")
    return reader(Path(root), **options)
