"""Point estimates of the evaluation metrics, through torchmetrics: ``regression_metrics``,
``auroc_binary`` (by the exact rank formula, the one the bootstrap resamples use), ``classification_metrics``,
``bland_altman``.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score
from torchmetrics.functional.classification import multiclass_confusion_matrix

from echojepa.metrics.arrays import ArrayLike, as_array, as_tensor, same_length
from echojepa.metrics.weighted import weighted_auroc


def regression_metrics(pred: ArrayLike, target: ArrayLike) -> dict[str, float]:
    p, t = as_tensor(pred).reshape(-1), as_tensor(target).reshape(-1)
    same_length(p, t)
    return {
        "mae": float(mean_absolute_error(p, t)),
        "rmse": float(mean_squared_error(p, t, squared=False)),
        "r2": float(r2_score(p, t)) if len(t) > 1 else float("nan"),
    }


def auroc_binary(score: ArrayLike, label: ArrayLike) -> float:
    s, y = as_tensor(score).reshape(-1), as_tensor(label, torch.long).reshape(-1)
    same_length(s, y)
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
    p = as_tensor(probs)
    if p.ndim != 2:
        raise ValueError(f"probs must be [n, C], got shape {tuple(p.shape)}")
    y = as_tensor(target, torch.long).reshape(-1)
    same_length(p, y)
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
    diff = as_array(pred).reshape(-1) - as_array(target).reshape(-1)
    if diff.size < 2:
        raise ValueError("Bland-Altman needs at least 2 pairs")
    bias, sd = float(diff.mean()), float(diff.std(ddof=1))
    return {"bias": bias, "sd": sd, "loa_low": bias - z * sd, "loa_high": bias + z * sd}
