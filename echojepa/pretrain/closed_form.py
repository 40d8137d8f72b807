"""Closed-form probes for online evaluation: time-keeping pooling and ridge with leave-one-out choice.

Everything here is pure tensor math (no Lightning, no files), so the online probe callback stays a thin
shell around it and the tests can check it against numpy.

Pooling keeps time and motion, and is one function for every source: encoder tokens `[B, N, D]` on
the grid (T', H', W'), and the pixel-statistics reference's cell means (one channel per cell and
tubelet) alike. It returns the per-time-step spatial means `[B, T', D]` (an echo's phase: systole,
diastole), the clip mean `[B, D]`, and the motion map: each token position's std over time, averaged to
at most `motion_cells` x `motion_cells` cells `[B, cells^2, D]`. Why the motion map: the cardiac phase
at a clip's first frame is arbitrary, so EF (how far the walls move) is an oscillation's amplitude, a
quadratic function of the time series that no linear readout of the per-time-step means can form. On
the science world's EF subsets (512 train / 256 val clips, 2026-12-02) a random-init cpu_tiny encoder's
per-time-step means scored 10.74 val MAE against the train mean's 10.69, its per-position std over
time 6.16 (`scripts/ef_readout.py`, results/science/ef_readout.json). Before this, only the pixel
reference had a motion term (each cell's std over frames), which made it look uniquely able to read EF.

The probe is ridge regression with an unpenalised intercept, solved in its dual form (an n x n
eigendecomposition, n = the train subset, a few hundred at most), so every ridge strength of the grid
costs one matrix product. The strength is chosen on the train subset alone by exact leave-one-out
(the hat-matrix shortcut e_i / (1 - H_ii), exact for any quadratic penalty); validation only scores
the chosen one. Classification is ridge on one-hot targets, predicted class = argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# Guards for a constant feature (std 0) and a leave-one-out leverage of 1; numerical, not modelling.
_STD_FLOOR = 1e-6
_LEVERAGE_FLOOR = 1e-9


def time_pooled(tokens: Tensor, grid: tuple[int, int, int], motion_cells: int = 4) -> Tensor:
    """Tokens [B, N, D] (t-major on grid (T', H', W')) -> [B, (T' + 1 + c^2) * D], c = min(motion_cells,
    H', W'): per-time-step spatial means, the clip mean, then each position's std over time averaged
    to a c x c grid (the motion map; all-zero when T' = 1)."""
    t, h, w = grid
    b, n, d = tokens.shape
    if n != t * h * w:
        raise ValueError(f"{n} tokens do not fill the grid {grid}")
    if motion_cells < 1:
        raise ValueError(f"motion_cells must be >= 1, got {motion_cells}")
    x = tokens.float().reshape(b, t, h, w, d)  # [B, T', H', W', D]
    per_t = x.mean(dim=(2, 3))  # [B, T', D]
    motion = x.std(dim=1, unbiased=False).permute(0, 3, 1, 2)  # [B, D, H', W']
    motion = F.adaptive_avg_pool2d(motion, (min(motion_cells, h), min(motion_cells, w)))  # [B, D, c, c]
    return torch.cat([per_t.reshape(b, t * d), per_t.mean(dim=1), motion.flatten(1)], dim=1)


def pixel_tokens(video: Tensor, tubelet: int, cells: int) -> tuple[Tensor, tuple[int, int, int]]:
    """The non-learned reference as tokens: video [B, C, T, H, W] (any scale) -> one token per tubelet of
    frames whose channels are the mean grey levels of a cells x cells grid (a thumbnail), [B, T',
    cells^2] on grid (T', 1, 1), so `time_pooled` treats it exactly as it treats encoder tokens: per
    tubelet the thumbnail, the clip's mean thumbnail, and each cell's std over time."""
    b, _, t, h, w = video.shape
    if t % tubelet:
        raise ValueError(f"{t} frames do not split into tubelets of {tubelet}")
    grey = video.float().mean(dim=1).reshape(b * t, 1, h, w)  # [B*T, 1, H, W]
    cell = F.adaptive_avg_pool2d(grey, cells).reshape(b, t // tubelet, tubelet, cells * cells)
    return cell.mean(dim=2), (t // tubelet, 1, 1)  # [B, T', cells^2]


def pixel_time_pooled(video: Tensor, tubelet: int, cells: int) -> Tensor:
    """`time_pooled` of `pixel_tokens`: [B, (T' + 2) * cells^2]."""
    tokens, grid = pixel_tokens(video, tubelet, cells)
    return time_pooled(tokens, grid)


def standardise(train: Tensor, *others: Tensor) -> tuple[Tensor, ...]:
    """z-score every feature with the train subset's mean and std (others use the same statistics)."""
    mean = train.mean(dim=0, keepdim=True)
    std = (
        train.std(dim=0, keepdim=True).clamp_min(_STD_FLOOR) if train.shape[0] > 1 else torch.ones_like(mean)
    )
    return tuple((x - mean) / std for x in (train, *others))


def ridge_path(
    x_train: Tensor, y_train: Tensor, x_val: Tensor, alphas: Sequence[float]
) -> tuple[Tensor, Tensor]:
    """Ridge with intercept for each strength: (leave-one-out predictions [A, n, k] on the train subset,
    predictions [A, m, k] on x_val). y_train is [n] or [n, k].

    The penalty of alpha is lambda = alpha * trace(K) / n with K the centred Gram matrix, i.e. alpha is
    relative to the mean squared norm of a sample, so one grid fits any feature width.
    """
    x = x_train.double()
    y = y_train.double().reshape(x.shape[0], -1)  # [n, k]
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"ridge with leave-one-out needs at least 2 training samples, got {n}")
    x_mean, y_mean = x.mean(dim=0, keepdim=True), y.mean(dim=0, keepdim=True)
    xc, yc = x - x_mean, y - y_mean
    xv = x_val.double() - x_mean
    s, u = torch.linalg.eigh(xc @ xc.T)  # K = U diag(s) U^T, [n], [n, n]
    s = s.clamp_min(0.0)
    uty = u.T @ yc  # [n, k]
    cross = xv @ xc.T @ u  # [m, n]: validation rows against the train eigenbasis
    scale = s.sum() / n
    loo, val = [], []
    for alpha in alphas:
        lam = float(alpha) * float(scale) if scale > 0 else float(alpha)
        shrink = s / (s + lam)  # [n]
        fitted = y_mean + u @ (shrink[:, None] * uty)  # [n, k]
        leverage = 1.0 / n + (u * u) @ shrink  # diag of the hat matrix, intercept included
        resid = (y - fitted) / (1.0 - leverage).clamp_min(_LEVERAGE_FLOOR)[:, None]
        loo.append(y - resid)
        val.append(y_mean + cross @ (uty / (s + lam)[:, None]))
    return torch.stack(loo), torch.stack(val)


@dataclass(frozen=True)
class ProbeScore:
    """The validation metric of the chosen strength: accuracy (classification) or MAE (regression)."""

    value: float
    alpha: float


def fit_and_score(
    kind: str,
    x_train: Tensor,
    y_train: Tensor,
    x_val: Tensor,
    y_val: Tensor,
    alphas: Sequence[float],
    num_classes: int | None = None,
) -> ProbeScore:
    """Standardise, ridge over the alpha grid, choose on train leave-one-out, score on validation.

    kind "classification": y are class indices; the strength with the best leave-one-out accuracy
    wins (ties: lower leave-one-out squared error); scored by validation accuracy.
    kind "regression": y in real units; the lowest leave-one-out squared error wins; scored by
    validation MAE in the same units.
    """
    xt, xv = standardise(x_train.float(), x_val.float())
    if kind == "classification":
        k = num_classes if num_classes is not None else int(max(y_train.max(), y_val.max())) + 1
        onehot = F.one_hot(y_train.long(), k).double()  # [n, k]
        loo, val = ridge_path(xt, onehot, xv, alphas)
        loo_acc = (loo.argmax(dim=2) == y_train.long()).double().mean(dim=1)  # [A]
        loo_mse = ((loo - onehot) ** 2).mean(dim=(1, 2))  # [A]
        best = max(range(len(alphas)), key=lambda a: (float(loo_acc[a]), -float(loo_mse[a])))
        acc = (val[best].argmax(dim=1) == y_val.long()).double().mean()
        return ProbeScore(float(acc), float(alphas[best]))
    if kind == "regression":
        y = y_train.double()
        loo, val = ridge_path(xt, y, xv, alphas)
        loo_mse = ((loo[..., 0] - y) ** 2).mean(dim=1)  # [A]
        best = int(loo_mse.argmin())
        mae = (val[best, :, 0] - y_val.double()).abs().mean()
        return ProbeScore(float(mae), float(alphas[best]))
    raise ValueError(f"unknown probe kind {kind!r}; valid: classification, regression")


def trivial_score(kind: str, y_train: Tensor, y_val: Tensor) -> float:
    """What a probe that ignores the clip gets: majority-class accuracy, or train-mean MAE."""
    if kind == "classification":
        majority = int(torch.bincount(y_train.long()).argmax())
        return float((y_val.long() == majority).double().mean())
    return float((y_val.double() - y_train.double().mean()).abs().mean())
