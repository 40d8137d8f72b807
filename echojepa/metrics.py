"""Evaluation metrics (torchmetrics point estimates; AUROC by the exact rank formula) and vectorised
bootstrap confidence intervals.

Point estimates: ``regression_metrics``, ``auroc_binary``, ``classification_metrics``, ``bland_altman``.

Bootstrap: every resample is a vector of multiplicities (how often each item, or each patient's items, was
drawn), so a resample-with-replacement metric equals the same metric WEIGHTED by those multiplicities.
``bootstrap_weights`` draws them all at once ([R, n], from one index matrix) and the ``weighted_*``
functions evaluate all R resamples in a few array operations. ``groups`` (patient ids) resamples patients,
keeping all of a patient's items together.

Paired comparisons: ``paired_bootstrap`` evaluates a statistic of several evaluations on the SAME test
items (two backbones, or two conditions of one backbone) with the SAME resamples, so what the items
share (an easy patient is easy for both) cancels in the difference; ``paired_difference`` is the plain
metric(a) - metric(b) case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score
from torchmetrics.functional.classification import multiclass_confusion_matrix

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]
WeightedMetric = Callable[..., np.ndarray]


def _np(x: ArrayLike, dtype: Any = np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _t(x: ArrayLike, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.as_tensor(_np(x, np.float64 if dtype.is_floating_point else np.int64), dtype=dtype)


def _same_length(*arrays: np.ndarray) -> int:
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError(
            f"metric inputs must be non-empty and of equal length, got {[len(a) for a in arrays]}"
        )
    return n


# ---------------------------------------------------------------------------------------------------------
# Point estimates


def regression_metrics(pred: ArrayLike, target: ArrayLike) -> dict[str, float]:
    p, t = _t(pred).reshape(-1), _t(target).reshape(-1)
    _same_length(p, t)
    return {
        "mae": float(mean_absolute_error(p, t)),
        "rmse": float(mean_squared_error(p, t, squared=False)),
        "r2": float(r2_score(p, t)) if len(t) > 1 else float("nan"),
    }


def auroc_binary(score: ArrayLike, label: ArrayLike) -> float:
    s, y = _t(score).reshape(-1), _t(label, torch.long).reshape(-1)
    _same_length(s, y)
    if not ((y == 0) | (y == 1)).all():
        raise ValueError("auroc_binary labels must be 0/1")
    if y.min() == y.max():
        raise ValueError("AUROC needs both classes among the labels")
    # exact Mann-Whitney form (ties count one half): torchmetrics' binary_auroc drifted by ~4e-5 on
    # float64 scores with ties, and bootstrap resamples must agree with the point estimate's definition
    return float(weighted_auroc(s.numpy(), y.numpy())[0])


def classification_metrics(probs: ArrayLike, target: ArrayLike) -> dict[str, Any]:
    """probs [n, C] (or scores), target [n] int -> accuracy, balanced accuracy (mean recall over the classes
    present in target), confusion matrix (rows = true class, columns = predicted)."""
    p = _t(probs)
    if p.ndim != 2:
        raise ValueError(f"probs must be [n, C], got shape {tuple(p.shape)}")
    y = _t(target, torch.long).reshape(-1)
    _same_length(p, y)
    c = p.shape[1]
    if y.min() < 0 or y.max() >= c:
        raise ValueError(f"targets must lie in [0, {c}), got range [{int(y.min())}, {int(y.max())}]")
    cm = multiclass_confusion_matrix(p.argmax(dim=1), y, num_classes=c).to(torch.float64)  # [C, C]
    support = cm.sum(dim=1)
    recall = cm.diagonal()[support > 0] / support[support > 0]
    return {
        "accuracy": float(cm.diagonal().sum() / cm.sum()),
        "balanced_accuracy": float(recall.mean()),
        "confusion_matrix": cm.long().tolist(),
    }


def bland_altman(pred: ArrayLike, target: ArrayLike, z: float = 1.96) -> dict[str, float]:
    """Bias = mean(pred - target); limits of agreement = bias +- z * SD (sample SD)."""
    diff = _np(pred).reshape(-1) - _np(target).reshape(-1)
    if diff.size < 2:
        raise ValueError("Bland-Altman needs at least 2 pairs")
    bias, sd = float(diff.mean()), float(diff.std(ddof=1))
    return {"bias": bias, "sd": sd, "loa_low": bias - z * sd, "loa_high": bias + z * sd}


# ---------------------------------------------------------------------------------------------------------
# Weighted metrics: weights [R, n] (one row per resample) -> values [R]


def _rows(weights: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones((1, n)) if weights is None else np.atleast_2d(weights).astype(np.float64)


def weighted_mae(pred: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None) -> np.ndarray:
    err = np.abs(_np(pred) - _np(target))
    w = _rows(weights, len(err))
    return w @ err / w.sum(axis=1)


def weighted_rmse(pred: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None) -> np.ndarray:
    sq = (_np(pred) - _np(target)) ** 2
    w = _rows(weights, len(sq))
    return np.sqrt(w @ sq / w.sum(axis=1))


def weighted_r2(pred: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None) -> np.ndarray:
    p, t = _np(pred), _np(target)
    w = _rows(weights, len(t))
    tw = w.sum(axis=1)
    mean = w @ t / tw
    ss_res = w @ ((p - t) ** 2)
    ss_tot = (w * (t[None, :] - mean[:, None]) ** 2).sum(axis=1)  # [R]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)


def weighted_accuracy(probs: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None) -> np.ndarray:
    correct = (_np(probs).argmax(axis=1) == _np(target, np.int64)).astype(np.float64)
    w = _rows(weights, len(correct))
    return w @ correct / w.sum(axis=1)


def weighted_balanced_accuracy(
    probs: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None
) -> np.ndarray:
    p = _np(probs)
    t = _np(target, np.int64)
    onehot = np.eye(p.shape[1])[t]  # [n, C]
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    w = _rows(weights, len(t))
    support = w @ onehot  # [R, C]
    hits = w @ (onehot * correct[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
    return np.nanmean(recall, axis=1)


def weighted_auroc(score: ArrayLike, label: ArrayLike, weights: np.ndarray | None = None) -> np.ndarray:
    """P(score_pos > score_neg) + 0.5 P(tie), pairs weighted by their multiplicities; NaN where a resample
    lacks a class."""
    s, y = _np(score), _np(label, np.int64)
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    w = _rows(weights, len(s))[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first index of each run of tied scores
    ends = np.r_[starts[1:], len(s)] - 1
    level = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1  # tie level of each item
    cum_neg = np.cumsum(w * (y == 0), axis=1)  # [R, n]
    neg_below = np.where(starts > 0, cum_neg[:, np.maximum(starts - 1, 0)], 0.0)  # [R, U], strictly lower
    neg_tied = cum_neg[:, ends] - neg_below  # [R, U]
    w_pos = w * (y == 1)
    num = (w_pos * (neg_below + 0.5 * neg_tied)[:, level]).sum(axis=1)
    den = w_pos.sum(axis=1) * cum_neg[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


REGRESSION_METRICS: dict[str, WeightedMetric] = {
    "mae": weighted_mae,
    "rmse": weighted_rmse,
    "r2": weighted_r2,
}
CLASSIFICATION_METRICS: dict[str, WeightedMetric] = {
    "accuracy": weighted_accuracy,
    "balanced_accuracy": weighted_balanced_accuracy,
}


# ---------------------------------------------------------------------------------------------------------
# Bootstrap


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
    return _multiplicities(np.random.default_rng(seed), n_resamples, g)[:, member]  # [R, n]


def _multiplicities(rng: np.random.Generator, n_resamples: int, g: int) -> np.ndarray:
    """[R, g] counts: how often each of g units was drawn in each of R draws of g with replacement."""
    idx = rng.integers(0, g, size=(n_resamples, g))  # the index matrix: one row per resample
    flat = (idx + np.arange(n_resamples)[:, None] * g).ravel()
    counts = np.bincount(flat, minlength=n_resamples * g).reshape(n_resamples, g)
    return counts.astype(np.float64)


def _percentiles(boot: np.ndarray, alpha: float) -> tuple[float, float, int]:
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
    n = _same_length(*[_np(a, None) for a in arrays])
    value = float(metric_fn(*arrays, weights=None)[0])
    boot = metric_fn(*arrays, weights=bootstrap_weights(n, n_resamples, seed, groups))
    lo, hi, _ = _percentiles(np.asarray(boot), alpha)
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
    n = _same_length(*[_np(a, None) for a in arrays])
    weights = bootstrap_weights(n, n_resamples, seed, groups)
    out: dict[str, dict[str, Any]] = {}
    for name, fn in metrics.items():
        lo, hi, valid = _percentiles(np.asarray(fn(*arrays, weights=weights)), alpha)
        out[name] = {
            "value": float(fn(*arrays, weights=None)[0]),
            "ci": [lo, hi],
            "n_resamples": n_resamples,
            "n_valid": valid,
        }
    return out


# ---------------------------------------------------------------------------------------------------------
# Paired bootstrap

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
        seed_w = _multiplicities(np.random.default_rng([seed, 1]), n_resamples, n_seeds)  # [R, S]
    else:
        seed_w = np.ones((n_resamples, 1))

    def side_means(fns: Sequence[SideFn], w: np.ndarray | None, sw: np.ndarray) -> np.ndarray:
        per_seed = np.stack([np.asarray(fn(w), dtype=np.float64) for fn in fns], axis=1)  # [R, S]
        # a seed drawn 0 times must not carry its NaN (an undefined metric) into the mean
        return np.where(sw > 0, per_seed * sw, 0.0).sum(axis=1) / n_seeds

    point = statistic({k: side_means(f, None, np.ones((1, n_seeds))) for k, f in sides.items()})
    boot = statistic({k: side_means(f, weights, seed_w) for k, f in sides.items()})
    lo, hi, valid = _percentiles(np.asarray(boot, dtype=np.float64), alpha)
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
    n = _same_length(*[_np(x, None) for x in (*a, *b)])

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
