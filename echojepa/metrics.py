"""Evaluation metrics (torchmetrics point estimates; AUROC by the exact rank formula) and vectorised
bootstrap confidence intervals.

Point estimates: ``regression_metrics``, ``auroc_binary``, ``classification_metrics``, ``bland_altman``.

Bootstrap: every resample is a vector of multiplicities (how often each item, or each patient's items, was
drawn), so a resample-with-replacement metric equals the same metric WEIGHTED by those multiplicities.
``bootstrap_weights`` draws them all at once ([R, n], from one index matrix) and the ``weighted_*``
functions evaluate all R resamples in a few array operations. ``groups`` (patient ids) resamples patients,
keeping all of a patient's items together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    rng = np.random.default_rng(seed)
    if groups is None:
        member, g = np.arange(n), n
    else:
        ids = np.asarray(groups)
        if len(ids) != n:
            raise ValueError(f"groups has {len(ids)} ids for {n} items")
        _, member = np.unique(ids, return_inverse=True)
        g = int(member.max()) + 1
    idx = rng.integers(0, g, size=(n_resamples, g))  # the index matrix: one row per resample
    flat = (idx + np.arange(n_resamples)[:, None] * g).ravel()
    counts = np.bincount(flat, minlength=n_resamples * g).reshape(n_resamples, g)  # [R, G]
    return counts[:, member].astype(np.float64)  # [R, n]


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
