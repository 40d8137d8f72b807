"""Shared inputs for the metric tests: EF-like predictions, and AUROC by brute force."""

from __future__ import annotations

import numpy as np


def ef_predictions(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pred, target) for n items: EF-like targets, predictions off by N(0, 5)."""
    rng = np.random.default_rng(seed)
    target = rng.normal(55.0, 12.0, n)
    return target + rng.normal(0.0, 5.0, n), target


def auroc_by_pairs(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney by brute force over all (positive, negative) pairs; ties count one half."""
    pos, neg = score[label == 1], score[label == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())
