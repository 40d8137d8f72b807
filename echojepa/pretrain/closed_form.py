"""Closed-form probes for online evaluation: time-keeping pooling and ridge with leave-one-out choice.

Everything here is pure tensor math (no Lightning, no files), so the online probe callback stays a thin
shell around it and the tests can check it against numpy.

Pooling keeps time: an echo's phase (systole, diastole) is what EF is about, and a plain clip mean
throws it away. Encoder tokens `[B, N, D]` on the grid (T', H', W') become the per-time-step means
`[B, T', D]`, flattened, followed by the clip mean `[B, D]`.

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


def time_pooled(tokens: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """Encoder tokens [B, N, D] (t-major on grid (T', H', W')) -> [B, (T' + 1) * D]:
    per-time-step spatial means, then the clip mean."""
    t, h, w = grid
    b, n, d = tokens.shape
    if n != t * h * w:
        raise ValueError(f"{n} tokens do not fill the grid {grid}")
    per_t = tokens.float().reshape(b, t, h * w, d).mean(dim=2)  # [B, T', D]
    return torch.cat([per_t.reshape(b, t * d), per_t.mean(dim=1)], dim=1)


def pixel_time_pooled(video: Tensor, tubelet: int, cells: int) -> Tensor:
    """Pixel statistics that keep time, the non-learned reference: video [B, C, T, H, W] (any scale)
    -> [B, T' * cells^2 + cells^2]: mean grey level of each cell of a cells x cells grid per tubelet of
    frames, then each cell's standard deviation over all frames (how much it moves)."""
    b, _, t, h, w = video.shape
    if t % tubelet:
        raise ValueError(f"{t} frames do not split into tubelets of {tubelet}")
    grey = video.float().mean(dim=1).reshape(b * t, 1, h, w)  # [B*T, 1, H, W]
    cell = F.adaptive_avg_pool2d(grey, cells).reshape(b, t, cells * cells)  # [B, T, cells^2]
    per_t = cell.reshape(b, t // tubelet, tubelet, cells * cells).mean(dim=2)  # [B, T', cells^2]
    return torch.cat([per_t.reshape(b, -1), cell.std(dim=1)], dim=1)


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
