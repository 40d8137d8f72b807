"""Vectorised percentile-bootstrap confidence intervals.

Every resample is a vector of multiplicities (how often each item, or each patient's items, was drawn):
``bootstrap_weights`` draws them all at once ([R, n], from one index matrix) and a ``weighted_*`` metric
(``echojepa.metrics.weighted``) evaluates all R resamples on them. ``groups`` (patient ids) resamples
patients, keeping all of a patient's items together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from echojepa.metrics.arrays import ArrayLike, as_array, same_length
from echojepa.metrics.weighted import WeightedMetric


def bootstrap_weights(
    n: int, n_resamples: int = 1000, seed: int = 0, groups: ArrayLike | Sequence[Any] | None = None
) -> np.ndarray:
    """Multiplicity of each item in each resample: [n_resamples, n]. With ``groups`` (one id per item),
    groups are drawn with replacement and an item counts as often as its group was drawn."""
    if groups is None:
        member, g = np.arange(n), n
    else:
        ids = np.asarray(groups)
        if len(ids) != n:
            raise ValueError(f"groups has {len(ids)} ids for {n} items")
        _, member = np.unique(ids, return_inverse=True)
        g = int(member.max()) + 1
    return multiplicities(np.random.default_rng(seed), n_resamples, g)[:, member]  # [R, n]


def multiplicities(rng: np.random.Generator, n_resamples: int, g: int) -> np.ndarray:
    """[R, g] counts: how often each of g units was drawn in each of R draws of g with replacement."""
    idx = rng.integers(0, g, size=(n_resamples, g))  # the index matrix: one row per resample
    flat = (idx + np.arange(n_resamples)[:, None] * g).ravel()
    counts = np.bincount(flat, minlength=n_resamples * g).reshape(n_resamples, g)
    return counts.astype(np.float64)


def percentile_ci(boot: np.ndarray, alpha: float) -> tuple[float, float, int]:
    """Percentile interval of the finite values of ``boot`` at level 1 - alpha: (lower, upper, how many
    were finite); NaN bounds when none was (the metric was undefined on every resample)."""
    valid = boot[np.isfinite(boot)]
    if valid.size == 0:
        return float("nan"), float("nan"), 0
    lo, hi = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi), int(valid.size)


def bootstrap_ci(
    metric_fn: WeightedMetric,
    *arrays: ArrayLike,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: ArrayLike | Sequence[Any] | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap: (value on all data, lower, upper). ``metric_fn(*arrays, weights=[R, n])`` must
    return one value per row (the ``weighted_*`` functions here do). Resamples where the metric is
    undefined (e.g. AUROC without a positive) are left out of the percentiles."""
    n = same_length(*[as_array(a, None) for a in arrays])
    value = float(metric_fn(*arrays, weights=None)[0])
    boot = metric_fn(*arrays, weights=bootstrap_weights(n, n_resamples, seed, groups))
    lo, hi, _ = percentile_ci(np.asarray(boot), alpha)
    return value, lo, hi


def with_ci(
    metrics: Mapping[str, WeightedMetric],
    *arrays: ArrayLike,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: ArrayLike | Sequence[Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every metric with its CI, all on the same resamples:
    ``{name: {"value", "ci": [lo, hi], "n_resamples", "n_valid"}}`` (the results-record layout)."""
    n = same_length(*[as_array(a, None) for a in arrays])
    weights = bootstrap_weights(n, n_resamples, seed, groups)
    out: dict[str, dict[str, Any]] = {}
    for name, fn in metrics.items():
        lo, hi, valid = percentile_ci(np.asarray(fn(*arrays, weights=weights)), alpha)
        out[name] = {
            "value": float(fn(*arrays, weights=None)[0]),
            "ci": [lo, hi],
            "n_resamples": n_resamples,
            "n_valid": valid,
        }
    return out
