"""The weighted (bootstrap) forms of the metrics against the metrics on resampled data."""

from __future__ import annotations

import numpy as np
import pytest

from echojepa.metrics.bootstrap import bootstrap_weights
from echojepa.metrics.point import classification_metrics, regression_metrics
from echojepa.metrics.weighted import (
    weighted_auroc,
    weighted_balanced_accuracy,
    weighted_mae,
    weighted_r2,
    weighted_rmse,
)

from .helpers import auroc_by_pairs, ef_predictions


def test_weighted_metrics_equal_the_metric_on_the_resampled_data():
    """A resample with replacement == the data weighted by multiplicities: the bootstrap's core identity."""
    pred, target = ef_predictions(60, seed=3)
    label = (target < 50).astype(int)
    rng = np.random.default_rng(4)
    probs = rng.random((60, 3))
    cls = rng.integers(0, 3, 60)
    w = bootstrap_weights(60, n_resamples=5, seed=7)
    assert (w.sum(axis=1) == 60).all()
    for r in range(5):
        idx = np.repeat(np.arange(60), w[r].astype(int))
        m = regression_metrics(pred[idx], target[idx])
        assert weighted_mae(pred, target, w)[r] == pytest.approx(m["mae"])
        assert weighted_rmse(pred, target, w)[r] == pytest.approx(m["rmse"])
        assert weighted_r2(pred, target, w)[r] == pytest.approx(m["r2"])
        assert weighted_auroc(-pred, label, w)[r] == pytest.approx(auroc_by_pairs(-pred[idx], label[idx]))
        c = classification_metrics(probs[idx], cls[idx])
        assert weighted_balanced_accuracy(probs, cls, w)[r] == pytest.approx(c["balanced_accuracy"])
