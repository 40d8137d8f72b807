"""EchoMAE's light decoder and the patch <-> pixel bookkeeping of the reconstruction objective.

The decoder is the JEPA predictor's architecture (visible tokens + a mask token at every masked
position, sorted so RoPE sees the real layout) with a pixel head: the two objectives then differ
only in what they predict (pixels vs latents), which is the comparison the seed makes.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from echojepa.models.predictor import Predictor


def patchify(video: torch.Tensor, patch_size: int, tubelet_size: int) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, N, tubelet*patch*patch*C], tokens in t-major order like the encoder."""
    return rearrange(
        video,
        "b c (t pt) (h ph) (w pw) -> b (t h w) (pt ph pw c)",
        pt=tubelet_size,
        ph=patch_size,
        pw=patch_size,
    )


def normalise_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-patch zero mean, unit variance (the MAE 'norm_pix_loss' target)."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True, unbiased=False)
    return (patches - mean) / (var + eps).sqrt()


class MAEDecoder(nn.Module):
    def __init__(self, embed_dim: int, patch_dim: int, **predictor_kwargs) -> None:
        super().__init__()
        self.body = Predictor(embed_dim=embed_dim, **predictor_kwargs)
        self.pixel_head = nn.Linear(embed_dim, patch_dim)

    def forward(
        self,
        visible: torch.Tensor,  # [B, Nv, D]
        visible_idx: torch.Tensor,  # [B, Nv]
        masked_idx: torch.Tensor,  # [B, Nm]
        grid_size: tuple[int, int, int],
    ) -> torch.Tensor:
        x = self.body(visible, visible_idx, masked_idx, grid_size=grid_size)  # [B, Nm, D]
        pixels = self.pixel_head(x)  # [B, Nm, patch_dim]
        return pixels.to(self.pixel_head.weight.dtype)  # float32 under autocast: the loss is taken on it
