"""Stacked primitives: the math of K probe heads at once.

Every weight carries a leading head axis K; activations are either shared by the heads ([B, ...]) or per
head ([K, B, ...]). Each head's slice is computed by the same kernel shape whatever K is, so one code path
serves one head (K = 1) and a bank of K heads (``echojepa.probe.bank``). Parameters are passed as a flat
mapping of stacked tensors (``Params``), named as the heads' ``named_parameters``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

Params = dict[str, Tensor]


def sub_params(params: Mapping[str, Tensor], prefix: str) -> Params:
    """The parameters under ``prefix.`` with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in params.items() if k.startswith(prefix + ".")}


def stacked_affine(z: Tensor, w: Tensor, b: Tensor, shared: bool) -> Tensor:
    """Per-head LayerNorm affine: z [(K,) B, ..., D] * w [K, D] + b [K, D] -> [K, B, ..., D]."""
    extra = z.ndim - (1 if shared else 2)  # dims between the head axis and D
    shape = (w.shape[0],) + (1,) * extra + (w.shape[-1],)
    return z * w.view(shape) + b.view(shape)


def stacked_layer_norm(x: Tensor, p: Params, shared: bool, eps: float) -> Tensor:
    z = F.layer_norm(x, x.shape[-1:], eps=eps)  # normalised once, even for K heads on shared input
    return stacked_affine(z, p["weight"], p["bias"], shared)


def stacked_linear(x: Tensor, p: Params) -> Tensor:
    """x [K, B, ..., in] -> [K, B, ..., out] with weight [K, out, in] and bias [K, out]."""
    k, lead, d_in = x.shape[0], x.shape[1:-1], x.shape[-1]
    w = p["weight"]
    y = torch.baddbmm(p["bias"].unsqueeze(1), x.reshape(k, -1, d_in), w.transpose(1, 2))  # [K, M, out]
    return y.reshape(k, *lead, w.shape[1])


def stacked_mlp(x: Tensor, p: Params) -> Tensor:
    return stacked_linear(F.gelu(stacked_linear(x, sub_params(p, "fc1"))), sub_params(p, "fc2"))
