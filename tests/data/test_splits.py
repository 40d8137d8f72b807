"""Hashed per-patient splits: deterministic, near the fractions asked for, fractions validated."""

from __future__ import annotations

import pytest

from echojepa.data.datasets import hash_split


def test_hash_split_is_deterministic_and_near_fractions() -> None:
    keys = [f"subject{i}" for i in range(3000)]
    splits = [hash_split(k) for k in keys]
    assert splits == [hash_split(k) for k in keys]
    assert abs(splits.count("train") / 3000 - 0.8) < 0.03
    assert abs(splits.count("val") / 3000 - 0.1) < 0.02
    assert {hash_split(k, (0.0, 0.0, 1.0)) for k in keys[:50]} == {"test"}


def test_hash_split_rejects_fractions_not_summing_to_one() -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        hash_split("x", (0.8, 0.1, 0.2))
