"""Metrics against independent numpy computations; the weighted (bootstrap) forms; bootstrap CIs."""

from __future__ import annotations

import numpy as np
import pytest

from echojepa.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    auroc_binary,
    bland_altman,
    bootstrap_ci,
    bootstrap_weights,
    classification_metrics,
    paired_bootstrap,
    paired_difference,
    regression_metrics,
    weighted_accuracy,
    weighted_auroc,
    weighted_balanced_accuracy,
    weighted_mae,
    weighted_r2,
    weighted_rmse,
    with_ci,
)


def _ef(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.normal(55.0, 12.0, n)
    return target + rng.normal(0.0, 5.0, n), target


def _auroc_pairs(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney by brute force over all (positive, negative) pairs; ties count one half."""
    pos, neg = score[label == 1], score[label == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_regression_metrics_equal_numpy():
    pred, target = _ef(200)
    m = regression_metrics(pred, target)
    err = pred - target
    assert m["mae"] == pytest.approx(np.abs(err).mean())
    assert m["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    assert m["r2"] == pytest.approx(1 - (err**2).sum() / ((target - target.mean()) ** 2).sum())


def test_auroc_equals_pairwise_count_with_ties():
    rng = np.random.default_rng(1)
    label = rng.integers(0, 2, 300)
    score = np.round(label + rng.normal(0, 1.0, 300), 1)  # rounding makes ties
    expected = _auroc_pairs(score, label)
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
    pred, target = _ef(100)
    d = pred - target
    ba = bland_altman(pred, target)
    assert ba["bias"] == pytest.approx(d.mean())
    assert ba["loa_low"] == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))
    assert ba["loa_high"] == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))


def test_weighted_metrics_equal_the_metric_on_the_resampled_data():
    """A resample with replacement == the data weighted by multiplicities: the bootstrap's core identity."""
    pred, target = _ef(60, seed=3)
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
        assert weighted_auroc(-pred, label, w)[r] == pytest.approx(_auroc_pairs(-pred[idx], label[idx]))
        c = classification_metrics(probs[idx], cls[idx])
        assert weighted_balanced_accuracy(probs, cls, w)[r] == pytest.approx(c["balanced_accuracy"])


def test_bootstrap_ci_contains_the_estimate_and_is_deterministic_per_seed():
    pred, target = _ef(300)
    value, lo, hi = bootstrap_ci(weighted_mae, pred, target, n_resamples=500, seed=0)
    assert value == pytest.approx(np.abs(pred - target).mean())
    assert lo < value < hi
    assert bootstrap_ci(weighted_mae, pred, target, n_resamples=500, seed=0) == (value, lo, hi)
    assert bootstrap_ci(weighted_mae, pred, target, n_resamples=500, seed=1) != (value, lo, hi)


def test_bootstrap_ci_narrows_with_more_data():
    widths = []
    for n in (50, 500, 5000):
        pred, target = _ef(n, seed=5)
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
    pred, target = _ef(120)
    out = with_ci(REGRESSION_METRICS, pred, target, n_resamples=200, seed=0)
    assert set(out) == {"mae", "rmse", "r2"}
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


# ---------------------------------------------------------------------------------------------------------
# Paired bootstrap


def _two_models(n: int, own_a: float, own_b: float, shared: float = 6.0, seed: int = 0):
    """Two regressors on the same items: a large error both share (item difficulty) plus their own."""
    rng = np.random.default_rng(seed)
    target = rng.normal(55.0, 12.0, n)
    common = rng.normal(0.0, shared, n)
    pred_a = target + common + rng.normal(0.0, own_a, n)
    pred_b = target + common + rng.normal(0.0, own_b, n)
    return pred_a, pred_b, target


def test_paired_difference_of_a_clearly_better_model_excludes_0():
    pred_a, pred_b, target = _two_models(200, own_a=0.5, own_b=6.0)
    got = paired_difference(weighted_mae, (pred_a, target), (pred_b, target), n_resamples=500)
    assert got.difference == pytest.approx(np.abs(pred_a - target).mean() - np.abs(pred_b - target).mean())
    assert got.difference < 0 and got.ci[1] < 0 and got.excludes_zero
    assert got.n_valid == 500 and got.n_items == 200 and got.n_seeds == 1


def test_paired_difference_of_identical_models_is_0_and_its_ci_includes_0():
    pred, _, target = _two_models(100, own_a=2.0, own_b=2.0)
    got = paired_difference(weighted_mae, (pred, target), (pred.copy(), target), n_resamples=300)
    assert got.difference == 0.0 and got.ci == (0.0, 0.0) and not got.excludes_zero


def test_pairing_cancels_what_the_items_share():
    """Hard items are hard for both models (errors scale with a shared item difficulty), and b errs 15 %
    more: the two single CIs overlap, the paired CI of the difference excludes 0."""
    rng = np.random.default_rng(3)
    target = rng.normal(55.0, 12.0, 120)
    difficulty = rng.exponential(5.0, 120) * rng.choice([-1.0, 1.0], 120)
    pred_a = target + difficulty + rng.normal(0.0, 0.2, 120)
    pred_b = target + 1.15 * difficulty + rng.normal(0.0, 0.2, 120)
    _, lo_a, hi_a = bootstrap_ci(weighted_mae, pred_a, target, n_resamples=500, seed=0)
    _, lo_b, hi_b = bootstrap_ci(weighted_mae, pred_b, target, n_resamples=500, seed=0)
    assert lo_b < hi_a  # unpaired, the intervals overlap
    assert paired_difference(weighted_mae, (pred_a, target), (pred_b, target), n_resamples=500).excludes_zero


def test_paired_bootstrap_gives_every_side_the_same_patient_draws():
    patients = np.repeat(np.arange(10), 3)  # 30 items, 3 per patient
    seen: dict[str, list] = {"a": [], "b": []}

    def recorder(name: str):
        def fn(w):
            if w is not None:
                seen[name].append(w)
            return np.zeros(1 if w is None else len(w))

        return fn

    paired_bootstrap(
        {"a": [recorder("a")], "b": [recorder("b")]},
        lambda v: v["a"] - v["b"],
        30,
        groups=patients,
        n_resamples=50,
    )
    (wa,), (wb,) = seen["a"], seen["b"]
    assert np.array_equal(wa, wb)
    per_patient = wa.reshape(50, 10, 3)
    assert (per_patient == per_patient[:, :, :1]).all()  # a patient's items are drawn together
    assert np.allclose(wa.sum(axis=1), 30)


def test_paired_bootstrap_averages_seeds_and_resamples_them():
    """Seed values 1 and 3 against 0, with nothing varying over items: the estimate is the seed mean, and
    the CI comes from drawing the two seeds with replacement (1, 2 or 3)."""

    def const(x: float):
        return lambda w: np.full(1 if w is None else len(w), x)

    got = paired_bootstrap(
        {"a": [const(1.0), const(3.0)], "b": [const(0.0), const(0.0)]},
        lambda v: v["a"] - v["b"],
        8,
        n_resamples=400,
    )
    assert got.difference == 2.0 and got.n_seeds == 2
    assert got.ci == (1.0, 3.0)


def test_paired_bootstrap_refuses_sides_with_different_seed_counts():
    def zero(w):
        return np.zeros(1 if w is None else len(w))

    with pytest.raises(ValueError, match="same, non-zero number of seeds"):
        paired_bootstrap({"a": [zero, zero], "b": [zero]}, lambda v: v["a"] - v["b"], 5)


def test_bootstrap_weights_are_unchanged_by_the_paired_refactor():
    """The draw for a given seed stays what records already hold: pinned against the explicit recipe."""
    rng = np.random.default_rng(4)
    idx = rng.integers(0, 7, size=(3, 7))
    expected = np.stack([np.bincount(row, minlength=7) for row in idx]).astype(np.float64)
    assert np.array_equal(bootstrap_weights(7, n_resamples=3, seed=4), expected)
