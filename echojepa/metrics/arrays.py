"""The metrics' input type and conversions: a numpy array, a tensor or a list in, a float64 (or int64)
numpy array or tensor out, and the check that a metric's inputs are non-empty and of equal length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]


def as_array(x: ArrayLike, dtype: Any = np.float64) -> np.ndarray:
    """``x`` as a numpy array of ``dtype`` (a tensor is detached and moved to the CPU first)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def as_tensor(x: ArrayLike, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``x`` as a CPU tensor of ``dtype``, through a float64 (or int64) numpy array."""
    return torch.as_tensor(as_array(x, np.float64 if dtype.is_floating_point else np.int64), dtype=dtype)


def same_length(*arrays: np.ndarray) -> int:
    """The common length of ``arrays``; ValueError when one is empty or the lengths differ."""
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError(
            f"metric inputs must be non-empty and of equal length, got {[len(a) for a in arrays]}"
        )
    return n
