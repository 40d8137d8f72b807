"""Split rules: split names, hashed per-patient splits, and the no-leak check across splits.

Splits are assigned per patient/exam, never per clip, and a patient found in two splits is an
error (or, with `on_error="skip"`, all of that patient's clips are skipped and counted).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence

from echojepa.data.datasets.errors import Issues
from echojepa.data.index import SPLITS, Record

DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def normalise_split(value: str) -> str:
    """'TRAIN' / 'Val' / 'validation' -> 'train' / 'val'; raises ValueError for anything else."""
    split = _SPLIT_ALIASES.get(value.strip().lower())
    if split is None:
        raise ValueError(f"unknown split value {value!r} (expected one of {list(SPLITS)})")
    return split


def hash_split(key: str, fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> str:
    """A deterministic train/val/test split from a patient key (same key, same split, any machine)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    u = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:12], 16) / float(16**12)  # uniform in [0, 1)
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def enforce_patient_splits(records: list[Record], issues: Issues, unit: str = "patient") -> list[Record]:
    """Drop (or raise on) every clip of a patient that sits in more than one split: no leaks."""
    splits: dict[str, set[str]] = defaultdict(set)
    for r in records:
        splits[r.patient].add(r.split)
    kept = []
    for r in records:
        seen = splits[r.patient]
        if len(seen) > 1:
            issues.bad(r.path, f"{unit} {r.patient} is in several splits {sorted(seen)}: it would leak")
        else:
            kept.append(r)
    return kept
