"""Paired bootstrap comparisons: the shared draws, the seed averaging, what pairing cancels."""

from __future__ import annotations

import numpy as np
import pytest

from echojepa.metrics.bootstrap import bootstrap_ci
from echojepa.metrics.paired import paired_bootstrap, paired_difference
from echojepa.metrics.weighted import weighted_mae


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
