"""Bootstrap weights and percentile CIs."""

from __future__ import annotations

import numpy as np
import pytest

from echojepa.metrics.bootstrap import bootstrap_ci, bootstrap_weights, with_ci
from echojepa.metrics.point import classification_metrics, regression_metrics
from echojepa.metrics.weighted import CLASSIFICATION_METRICS, REGRESSION_METRICS, weighted_auroc, weighted_mae

from .helpers import ef_predictions


def test_bootstrap_ci_contains_the_estimate_and_is_deterministic_per_seed():
    pred, target = ef_predictions(300)
    value, lo, hi = bootstrap_ci(weighted_mae, pred, target, n_resamples=500, seed=0)
    assert value == pytest.approx(np.abs(pred - target).mean())
    assert lo < value < hi
    assert bootstrap_ci(weighted_mae, pred, target, n_resamples=500, seed=0) == (value, lo, hi)
    assert bootstrap_ci(weighted_mae, pred, target, n_resamples=500, seed=1) != (value, lo, hi)


def test_bootstrap_ci_narrows_with_more_data():
    widths = []
    for n in (50, 500, 5000):
        pred, target = ef_predictions(n, seed=5)
        _, lo, hi = bootstrap_ci(weighted_mae, pred, target, n_resamples=400, seed=0)
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(10.0, rel=0.35)  # ~ 1 / sqrt(n)


def test_grouped_bootstrap_resamples_whole_patients():
    # 40 patients x 10 clips with the same error per patient: clips are not independent evidence
    rng = np.random.default_rng(6)
    patient_err = rng.normal(0, 5, 40)
    err = np.repeat(patient_err, 10)
    groups = np.repeat([f"p{i:02d}" for i in range(40)], 10)
    w = bootstrap_weights(400, n_resamples=50, seed=0, groups=groups)
    assert (w.reshape(50, 40, 10) == w.reshape(50, 40, 10)[..., :1]).all()  # a patient's clips move together
    target = np.zeros(400)
    _, lo_i, hi_i = bootstrap_ci(weighted_mae, err, target, n_resamples=800, seed=0)
    _, lo_g, hi_g = bootstrap_ci(weighted_mae, err, target, n_resamples=800, seed=0, groups=groups)
    assert (hi_g - lo_g) > 2.0 * (hi_i - lo_i)  # ~ sqrt(10) wider when resampling patients


def test_with_ci_gives_the_results_record_layout():
    pred, target = ef_predictions(120)
    out = with_ci(REGRESSION_METRICS, pred, target, n_resamples=200, seed=0)
    assert set(out) == {"mae", "rmse", "r2", "pearson_r"}
    for name, entry in out.items():
        assert set(entry) == {"value", "ci", "n_resamples", "n_valid"}
        assert entry["ci"][0] <= entry["value"] <= entry["ci"][1], name
        assert entry["n_resamples"] == 200
    assert out["mae"]["value"] == pytest.approx(regression_metrics(pred, target)["mae"])
    rng = np.random.default_rng(0)
    probs, cls = rng.random((80, 3)), rng.integers(0, 3, 80)
    cls_out = with_ci(CLASSIFICATION_METRICS, probs, cls, n_resamples=100)
    assert cls_out["accuracy"]["value"] == pytest.approx(classification_metrics(probs, cls)["accuracy"])


def test_undefined_resamples_are_left_out_of_the_auroc_ci():
    score = np.array([0.1, 0.2, 0.3, 0.9])
    label = np.array([0, 0, 0, 1])  # one positive: many resamples lack it
    out = with_ci({"auroc": weighted_auroc}, score, label, n_resamples=300, seed=0)
    assert 0 < out["auroc"]["n_valid"] < 300
    assert out["auroc"]["value"] == 1.0


def test_bootstrap_weights_are_unchanged_by_the_paired_refactor():
    """The draw for a given seed stays what records already hold: pinned against the explicit recipe."""
    rng = np.random.default_rng(4)
    idx = rng.integers(0, 7, size=(3, 7))
    expected = np.stack([np.bincount(row, minlength=7) for row in idx]).astype(np.float64)
    assert np.array_equal(bootstrap_weights(7, n_resamples=3, seed=4), expected)
