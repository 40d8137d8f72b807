"""Point estimates against independent numpy computations."""

from __future__ import annotations

import numpy as np
import pytest

from echojepa.metrics.point import auroc_binary, bland_altman, classification_metrics, regression_metrics
from echojepa.metrics.weighted import weighted_accuracy, weighted_auroc, weighted_balanced_accuracy

from .helpers import auroc_by_pairs, ef_predictions


def test_regression_metrics_equal_numpy():
    pred, target = ef_predictions(200)
    m = regression_metrics(pred, target)
    err = pred - target
    assert m["mae"] == pytest.approx(np.abs(err).mean())
    assert m["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    assert m["r2"] == pytest.approx(1 - (err**2).sum() / ((target - target.mean()) ** 2).sum())


def test_auroc_equals_pairwise_count_with_ties():
    rng = np.random.default_rng(1)
    label = rng.integers(0, 2, 300)
    score = np.round(label + rng.normal(0, 1.0, 300), 1)  # rounding makes ties
    expected = auroc_by_pairs(score, label)
    assert auroc_binary(score, label) == pytest.approx(expected, abs=1e-12)
    assert weighted_auroc(score, label)[0] == pytest.approx(expected, abs=1e-12)


def test_auroc_refuses_a_single_class():
    with pytest.raises(ValueError, match="both classes"):
        auroc_binary([0.1, 0.4], [1, 1])


def test_classification_metrics_equal_numpy():
    rng = np.random.default_rng(2)
    target = rng.integers(0, 4, 250)
    target[target == 3] = 2  # class 3 never occurs: balanced accuracy averages present classes only
    probs = rng.random((250, 4))
    probs[np.arange(250), target] += 0.6
    m = classification_metrics(probs, target)
    pred = probs.argmax(1)
    cm = np.zeros((4, 4), dtype=int)
    np.add.at(cm, (target, pred), 1)
    assert m["confusion_matrix"] == cm.tolist()
    assert m["accuracy"] == pytest.approx((pred == target).mean())
    recalls = [(pred[target == c] == c).mean() for c in np.unique(target)]
    assert m["balanced_accuracy"] == pytest.approx(np.mean(recalls))
    assert weighted_accuracy(probs, target)[0] == pytest.approx(m["accuracy"])
    assert weighted_balanced_accuracy(probs, target)[0] == pytest.approx(m["balanced_accuracy"])


def test_bland_altman_equals_numpy():
    pred, target = ef_predictions(100)
    d = pred - target
    ba = bland_altman(pred, target)
    assert ba["bias"] == pytest.approx(d.mean())
    assert ba["loa_low"] == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))
    assert ba["loa_high"] == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))
