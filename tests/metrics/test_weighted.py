"""The weighted (bootstrap) forms of the metrics against the metrics on resampled data."""

from __future__ import annotations

import numpy as np
import pytest

from echojepa.metrics.bootstrap import bootstrap_weights
from echojepa.metrics.point import classification_metrics, regression_metrics
from echojepa.metrics.weighted import (
    weighted_auroc,
    weighted_balanced_accuracy,
    weighted_bias,
    weighted_mae,
    weighted_pearson_r,
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
        assert weighted_pearson_r(pred, target, w)[r] == pytest.approx(
            np.corrcoef(pred[idx], target[idx])[0, 1]
        )
        assert weighted_bias(pred, target, w)[r] == pytest.approx(np.mean(pred[idx] - target[idx]))
        assert weighted_auroc(-pred, label, w)[r] == pytest.approx(auroc_by_pairs(-pred[idx], label[idx]))
        c = classification_metrics(probs[idx], cls[idx])
        assert weighted_balanced_accuracy(probs, cls, w)[r] == pytest.approx(c["balanced_accuracy"])


def test_pearson_r_ignores_a_constant_offset_that_the_bias_and_the_mae_carry():
    pred, target = ef_predictions(50, seed=1)
    shifted = pred - 12.0
    assert weighted_pearson_r(shifted, target)[0] == pytest.approx(weighted_pearson_r(pred, target)[0])
    assert weighted_bias(shifted, target)[0] == pytest.approx(weighted_bias(pred, target)[0] - 12.0)
    assert weighted_mae(shifted, target)[0] > weighted_mae(pred, target)[0] + 5.0


def test_pearson_r_is_undefined_for_a_constant_prediction():
    pred, target = ef_predictions(20, seed=2)
    assert np.isnan(weighted_pearson_r(np.full(20, 55.0), target)[0])
