"""A fixed map from a backbone's token width D to the common probe width W, fit on training tokens.

Why: a probe built at the backbone's width has a head whose size follows the backbone (a 1408-wide
ViT-g gets a ~20x larger attentive head than a 96-wide demo ViT), so a comparison of backbones would
also compare head capacities. Every backbone is therefore probed at one width W (``probe.width`` in
conf/probe/), and the map to W is *not trained*: the trainable parameters of the probe are then the same
for every backbone of a task, and whatever the map does, it does without labels.

What: on the TRAIN split's tokens only (labels are never read, so a label-subsampled run may use the
whole training split's tokens), with statistics in float64:

1. per-channel standardisation (mean and std over tokens; a constant channel maps to 0),
2. PCA of the standardised tokens (the channel correlation matrix), keeping the top ``min(W, D)``
   components; signs fixed so each component's largest loading is positive (deterministic),
3. whitening: component k is divided by ``sqrt(lambda_k + eps * mean(lambda))``, so each kept direction
   has (about) unit variance on the training tokens whatever the backbone's scale, and near-empty
   directions are not blown up into noise,
4. zero padding to W when D < W (then nothing is lost: the map is a whitening rotation).

The result is one affine map ``(x - shift) @ weight`` with ``shift`` [D] and ``weight`` [D, W]. Heads hold
it as buffers (``TokenProjection``): it is saved in and loaded from the probe checkpoint, so a saved probe
reproduces its predictions from raw backbone tokens, and it has no gradient.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

_CHUNK = 8192  # tokens per step of the moment accumulation (bounds float64 memory)


def sample_train_tokens(
    features: np.ndarray, num_clips: np.ndarray, max_tokens: int, seed: int = 0
) -> np.ndarray:
    """Tokens to fit the map on: every token of the present clips, or, when there are more than
    ``max_tokens``, every token of clips drawn at random (seeded) until ``max_tokens`` are reached, so the
    sample keeps whole clips. features [n, S, N, D] (a memmap is read clip by clip) -> float32 [M, D]."""
    if features.ndim != 4:
        raise ValueError(f"expected features [n, S, N, D], got shape {tuple(features.shape)}")
    n, s, n_tok, _ = features.shape
    clips = [(i, c) for i in range(n) for c in range(min(int(num_clips[i]), s))]
    if not clips:
        raise ValueError("no present clip to fit the token projection on")
    if len(clips) * n_tok > max_tokens:
        order = np.random.default_rng(seed).permutation(len(clips))
        keep = max(1, -(-int(max_tokens) // n_tok))  # whole clips, at least one
        clips = sorted(clips[k] for k in order[:keep])
    return np.concatenate([np.asarray(features[i, c], dtype=np.float32) for i, c in clips])


def fit_projection(tokens: np.ndarray, width: int, eps: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """(shift [D], weight [D, width]) as described in the module docstring, from tokens [M, D]."""
    if tokens.ndim != 2 or tokens.shape[0] < 2:
        raise ValueError(f"need tokens [M >= 2, D] to fit a projection, got shape {tuple(tokens.shape)}")
    if width < 1 or eps <= 0:
        raise ValueError(f"width must be >= 1 and eps > 0, got {width} and {eps}")
    m, d = tokens.shape
    mean = tokens.astype(np.float64).mean(axis=0)
    second = np.zeros((d, d))
    for start in range(0, m, _CHUNK):
        x = tokens[start : start + _CHUNK].astype(np.float64) - mean
        second += x.T @ x
    cov = second / (m - 1)
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    if not (std > 0).any():
        raise ValueError("the training tokens do not vary: nothing to project")
    inv_std = np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 0.0)  # constant channels -> 0
    corr = cov * inv_std[:, None] * inv_std[None, :]
    eigval, eigvec = np.linalg.eigh(corr)  # ascending
    k = min(width, d)
    eigval, eigvec = np.clip(eigval[::-1][:k], 0.0, None), eigvec[:, ::-1][:, :k]
    rows = np.abs(eigvec).argmax(axis=0)
    eigvec = eigvec * np.sign(eigvec[rows, np.arange(k)])  # each component's largest loading > 0
    scale = 1.0 / np.sqrt(eigval + eps * float(np.mean(np.clip(np.diag(corr), 0.0, None))))
    weight = np.zeros((d, width))
    weight[:, :k] = inv_std[:, None] * eigvec * scale[None, :]
    return mean.astype(np.float32), weight.astype(np.float32)


def projection_for(
    features: np.ndarray, num_clips: np.ndarray, width: int, cfg: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The map for one cached train entry with the options of ``probe.projection`` (conf/probe/):
    ``fit_tokens`` (most tokens sampled), ``eps`` (whitening floor), ``seed`` (token sample)."""
    cfg = dict(cfg or {})
    tokens = sample_train_tokens(
        features, num_clips, int(cfg.get("fit_tokens", 32768)), int(cfg.get("seed", 0))
    )
    return fit_projection(tokens, int(width), float(cfg.get("eps", 1e-3)))


class TokenProjection(nn.Module):
    """``(x - shift) @ weight``: tokens [..., in_dim] -> [..., out_dim]. Buffers only (never trained);
    until ``set`` is called it is the identity on the first ``min(in_dim, out_dim)`` channels."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.register_buffer("shift", torch.zeros(self.in_dim))
        self.register_buffer("weight", torch.eye(self.in_dim, self.out_dim))

    def set(self, shift: np.ndarray | Tensor, weight: np.ndarray | Tensor) -> None:
        shift, weight = torch.as_tensor(shift).float(), torch.as_tensor(weight).float()
        if tuple(shift.shape) != (self.in_dim,) or tuple(weight.shape) != (self.in_dim, self.out_dim):
            raise ValueError(
                f"projection must be shift [{self.in_dim}], weight [{self.in_dim}, {self.out_dim}]; got "
                f"{tuple(shift.shape)} and {tuple(weight.shape)}"
            )
        with torch.no_grad():
            self.shift.copy_(shift)
            self.weight.copy_(weight)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"tokens are {x.shape[-1]} wide; this probe's projection takes {self.in_dim}")
        return (x - self.shift) @ self.weight
