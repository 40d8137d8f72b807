"""The metrics weighted by item multiplicities: weights [R, n] (one row per resample) -> values [R].

A bootstrap resample is a vector of multiplicities (how often each item was drawn), so a
resample-with-replacement metric equals the same metric WEIGHTED by those multiplicities, and the
``weighted_*`` functions evaluate all R resamples in a few array operations. ``weights=None`` is every item
once: the point estimate, as a one-element array.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from echojepa.metrics.arrays import ArrayLike, as_array

WeightedMetric = Callable[..., np.ndarray]


def _rows(weights: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones((1, n)) if weights is None else np.atleast_2d(weights).astype(np.float64)


def weighted_mae(pred: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None) -> np.ndarray:
    err = np.abs(as_array(pred) - as_array(target))
    w = _rows(weights, len(err))
    return w @ err / w.sum(axis=1)


def weighted_rmse(pred: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None) -> np.ndarray:
    sq = (as_array(pred) - as_array(target)) ** 2
    w = _rows(weights, len(sq))
    return np.sqrt(w @ sq / w.sum(axis=1))


def weighted_r2(pred: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None) -> np.ndarray:
    p, t = as_array(pred), as_array(target)
    w = _rows(weights, len(t))
    tw = w.sum(axis=1)
    mean = w @ t / tw
    ss_res = w @ ((p - t) ** 2)
    ss_tot = (w * (t[None, :] - mean[:, None]) ** 2).sum(axis=1)  # [R]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)


def weighted_bias(pred: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean signed error, mean(pred - target): the Bland-Altman bias."""
    err = as_array(pred) - as_array(target)
    w = _rows(weights, len(err))
    return w @ err / w.sum(axis=1)


def weighted_pearson_r(pred: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation of pred with target; NaN where a resample leaves either constant. Unlike the
    MAE and the R2, a constant offset of the predictions leaves it unchanged."""
    p, t = as_array(pred), as_array(target)
    w = _rows(weights, len(t))
    tw = w.sum(axis=1)
    dp = p[None, :] - (w @ p / tw)[:, None]  # [R, n]
    dt = t[None, :] - (w @ t / tw)[:, None]
    cov = (w * dp * dt).sum(axis=1)  # [R]
    den = np.sqrt((w * dp**2).sum(axis=1) * (w * dt**2).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, cov / den, np.nan)


def weighted_accuracy(probs: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None) -> np.ndarray:
    correct = (as_array(probs).argmax(axis=1) == as_array(target, np.int64)).astype(np.float64)
    w = _rows(weights, len(correct))
    return w @ correct / w.sum(axis=1)


def weighted_balanced_accuracy(
    probs: ArrayLike, target: ArrayLike, weights: np.ndarray | None = None
) -> np.ndarray:
    p = as_array(probs)
    t = as_array(target, np.int64)
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
    s, y = as_array(score), as_array(label, np.int64)
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
    "pearson_r": weighted_pearson_r,
}
CLASSIFICATION_METRICS: dict[str, WeightedMetric] = {
    "accuracy": weighted_accuracy,
    "balanced_accuracy": weighted_balanced_accuracy,
}
