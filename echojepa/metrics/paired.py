"""Paired bootstrap comparisons of several evaluations on the SAME test items.

``paired_bootstrap`` evaluates a statistic of several evaluations (two backbones, or two conditions of one
backbone) with the SAME resamples, so what the items share (an easy patient is easy for both) cancels in
the difference; ``paired_difference`` is the plain metric(a) - metric(b) case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from echojepa.metrics.arrays import ArrayLike, as_array, same_length
from echojepa.metrics.bootstrap import bootstrap_weights, multiplicities, percentile_ci
from echojepa.metrics.weighted import WeightedMetric

# per seed, weights [R, n] (or None: all items once) -> the metric on those weights, [R] (or [1])
SideFn = Callable[[np.ndarray | None], np.ndarray]


@dataclass(frozen=True)
class PairedDifference:
    """A statistic of paired evaluations (e.g. metric(a) - metric(b)) with its percentile CI."""

    difference: float
    ci: tuple[float, float]
    excludes_zero: bool  # the whole CI lies on one side of 0 (False when the CI is undefined)
    alpha: float
    n_resamples: int
    n_valid: int  # resamples where the statistic was defined
    n_items: int
    n_groups: int  # patients (the resampled unit)
    n_seeds: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "ci": list(self.ci),
            "excludes_zero": self.excludes_zero,
            "alpha": self.alpha,
            "n_resamples": self.n_resamples,
            "n_valid": self.n_valid,
            "n_items": self.n_items,
            "n_groups": self.n_groups,
            "n_seeds": self.n_seeds,
        }


def paired_bootstrap(
    sides: Mapping[str, Sequence[SideFn]],
    statistic: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    n: int,
    *,
    groups: ArrayLike | Sequence[Any] | None = None,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedDifference:
    """Percentile CI of ``statistic`` over evaluations that share their n test items.

    ``sides``: name -> one metric function per seed (every side the same number of seeds, seed k of each
    side being the same training seed). Every side sees the same item multiplicities in a resample
    (``groups``: patients, drawn jointly for all sides), so the statistic's CI is that of a paired
    comparison. A side's value is the mean over its seeds, as in a table cell; with more than one seed,
    each resample also draws the seeds with replacement (the same draw for every side), so the CI covers
    training-seed variation as well as test sampling. ``statistic(values)`` maps name -> [R] values to
    [R] (e.g. ``values["a"] - values["b"]``)."""
    counts = {len(fns) for fns in sides.values()}
    if not sides or len(counts) != 1 or 0 in counts:
        seeds = {k: len(v) for k, v in sides.items()}
        raise ValueError(f"every side needs the same, non-zero number of seeds, got {seeds}")
    n_seeds = counts.pop()
    weights = bootstrap_weights(n, n_resamples, seed, groups)
    if n_seeds > 1:
        # a separate stream so the item draws equal those of a one-seed comparison with the same seed
        seed_w = multiplicities(np.random.default_rng([seed, 1]), n_resamples, n_seeds)  # [R, S]
    else:
        seed_w = np.ones((n_resamples, 1))

    def side_means(fns: Sequence[SideFn], w: np.ndarray | None, sw: np.ndarray) -> np.ndarray:
        per_seed = np.stack([np.asarray(fn(w), dtype=np.float64) for fn in fns], axis=1)  # [R, S]
        # a seed drawn 0 times must not carry its NaN (an undefined metric) into the mean
        return np.where(sw > 0, per_seed * sw, 0.0).sum(axis=1) / n_seeds

    point = statistic({k: side_means(f, None, np.ones((1, n_seeds))) for k, f in sides.items()})
    boot = statistic({k: side_means(f, weights, seed_w) for k, f in sides.items()})
    lo, hi, valid = percentile_ci(np.asarray(boot, dtype=np.float64), alpha)
    n_groups = n if groups is None else len(np.unique(np.asarray(groups)))
    return PairedDifference(
        difference=float(np.asarray(point).reshape(-1)[0]),
        ci=(lo, hi),
        excludes_zero=bool(valid > 0 and (lo > 0 or hi < 0)),
        alpha=alpha,
        n_resamples=n_resamples,
        n_valid=valid,
        n_items=n,
        n_groups=n_groups,
        n_seeds=n_seeds,
    )


def paired_difference(
    metric_fn: WeightedMetric,
    a: Sequence[ArrayLike],
    b: Sequence[ArrayLike],
    *,
    groups: ArrayLike | Sequence[Any] | None = None,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedDifference:
    """metric(a) - metric(b) with its paired bootstrap CI: ``a`` and ``b`` are the metric's arrays (e.g.
    (pred, target)) of two models on the same items in the same order; ``groups`` are the items'
    patients, resampled jointly for both models."""
    n = same_length(*[as_array(x, None) for x in (*a, *b)])

    def side(arrays: Sequence[ArrayLike]) -> SideFn:
        return lambda w: metric_fn(*arrays, weights=w)

    return paired_bootstrap(
        {"a": [side(a)], "b": [side(b)]},
        lambda v: v["a"] - v["b"],
        n,
        groups=groups,
        n_resamples=n_resamples,
        alpha=alpha,
        seed=seed,
    )
