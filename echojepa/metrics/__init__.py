"""Evaluation metrics and their bootstrap confidence intervals.

- ``point``: point estimates (torchmetrics; AUROC by the exact rank formula): ``regression_metrics``,
  ``auroc_binary``, ``classification_metrics``, ``bland_altman``.
- ``weighted``: the same metrics weighted by item multiplicities, one row of weights per bootstrap
  resample (``weighted_*``, Pearson r and the Bland-Altman bias among them, and the
  ``REGRESSION_METRICS`` / ``CLASSIFICATION_METRICS`` tables of them).
- ``bootstrap``: the resample multiplicities (``bootstrap_weights``, optionally by patient) and percentile
  CIs (``bootstrap_ci``, ``with_ci``).
- ``paired``: paired comparisons of evaluations on the same items with the same resamples
  (``paired_bootstrap``, ``paired_difference``, ``PairedDifference``).
- ``arrays``: the input type and conversions the others share.

The public names are re-exported here, so ``from echojepa.metrics import ...`` reaches all of them.
"""

from echojepa.metrics.arrays import ArrayLike
from echojepa.metrics.bootstrap import bootstrap_ci, bootstrap_weights, with_ci
from echojepa.metrics.paired import PairedDifference, SideFn, paired_bootstrap, paired_difference
from echojepa.metrics.point import auroc_binary, bland_altman, classification_metrics, regression_metrics
from echojepa.metrics.weighted import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    WeightedMetric,
    weighted_accuracy,
    weighted_auroc,
    weighted_balanced_accuracy,
    weighted_bias,
    weighted_mae,
    weighted_pearson_r,
    weighted_r2,
    weighted_rmse,
)

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "ArrayLike",
    "PairedDifference",
    "SideFn",
    "WeightedMetric",
    "auroc_binary",
    "bland_altman",
    "bootstrap_ci",
    "bootstrap_weights",
    "classification_metrics",
    "paired_bootstrap",
    "paired_difference",
    "regression_metrics",
    "weighted_accuracy",
    "weighted_auroc",
    "weighted_balanced_accuracy",
    "weighted_bias",
    "weighted_mae",
    "weighted_pearson_r",
    "weighted_r2",
    "weighted_rmse",
    "with_ci",
]
