"""Analytic training FLOPs, so the two objectives can be compared at equal compute.

Counts multiply-adds as 2 FLOPs, matrix products only (norms, softmax and activations are a few
percent at these widths). Backward is taken as 2x forward.
"""

from __future__ import annotations


def transformer_forward_flops(tokens: float, dim: int, depth: int, mlp_hidden: int) -> float:
    """Forward FLOPs of `depth` pre-norm blocks over `tokens` tokens (per sample)."""
    per_token_linear = 2 * (4 * dim * dim + 2 * dim * mlp_hidden)  # qkv + proj + fc1 + fc2
    attention = 2 * 2 * tokens * dim  # q@k^T and attn@v, per token
    return depth * tokens * (per_token_linear + attention)


def encoder_forward_flops(tokens: float, dim: int, depth: int, mlp_hidden: int, patch_dim: int) -> float:
    """Patch embedding (on the tokens actually kept) plus the blocks."""
    return 2 * tokens * patch_dim * dim + transformer_forward_flops(tokens, dim, depth, mlp_hidden)
