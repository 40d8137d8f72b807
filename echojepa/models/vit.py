"""Video Vision Transformer (V-JEPA 2 layout): tubelet patch embedding, 3D RoPE, pre-norm SDPA blocks.

Parameter names match the released V-JEPA 2 / EchoJEPA checkpoints (``patch_embed.proj``,
``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``), so released weights load
strictly after stripping their ``module.backbone.`` prefix.

Mixed precision (``torch.autocast``, e.g. Lightning's ``bf16-mixed``, on CPU or GPU): the matmuls run in
the autocast dtype, while the residual stream, the LayerNorms, the RoPE angles and the encoder's output
stay float32. A run without autocast computes exactly what it did before these rules existed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import Mlp, trunc_normal_
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from echojepa.models.attention import attention
from echojepa.models.rope import apply_rope, rope_tables


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast computes matmuls in on ``device_type`` ("cpu", "cuda"), or None when it is off."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


class Attention(nn.Module):
    """Multi-head self-attention with 3D RoPE on queries and keys."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # [B, heads, N, head_dim]
        x = attention(q, k, v)  # [B, heads, N, head_dim]
        return self.proj(rearrange(x, "b h n d -> b n (h d)"))  # [B, N, D]


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, norm_eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, hidden_features=mlp_hidden_dim(dim, mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


def mlp_hidden_dim(dim: int, mlp_ratio: float) -> int:
    # round, not int(): a ratio like 48/11 must give exactly 6144 for ViT-g even if the float is a hair low
    return int(round(dim * mlp_ratio))


def init_transformer_weights(module: nn.Module, blocks: Iterable[Block], std: float = 0.02) -> None:
    """V-JEPA init: truncated normal on Linear/Conv, unit LayerNorm; residual outputs scaled 1/sqrt(2l)."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv3d):
            trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    with torch.no_grad():
        for layer_id, blk in enumerate(blocks, start=1):
            blk.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
            blk.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))


def block_forward(blk: Block, x: Tensor, cos: Tensor, sin: Tensor, use_checkpointing: bool) -> Tensor:
    """One block, optionally recomputing its activations in backward instead of storing them."""
    if use_checkpointing and torch.is_grad_enabled():
        return checkpoint(blk, x, cos, sin, use_reentrant=False)
    return blk(x, cos, sin)


class PatchEmbed3D(nn.Module):
    """Non-overlapping tubelet x patch x patch Conv3d: [B, C, T, H, W] -> [B, D, T', H', W']."""

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)

    def tokens(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        """Tokens ``[B, N, D]`` in t-major order, or only the ``keep`` ``[B, Nk]`` ones.

        Without autocast: the Conv3d, then a gather (the original arithmetic). Under autocast the same
        sum runs as one matmul over the flattened patches, and only the kept patches are embedded: a CPU
        without native bf16 kernels runs a bf16 Conv3d through a slow im2col fallback (a third of a
        cpu_tiny bf16 step), while the matmul takes the path every Linear takes.
        """
        dtype = autocast_dtype(x.device.type)
        if dtype is None:
            tokens = rearrange(self.proj(x), "b d t h w -> b (t h w) d")  # [B, N, D]
            if keep is None:
                return tokens
            return torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        pt, ph, pw = self.proj.kernel_size
        patches = rearrange(
            x.to(dtype), "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw
        )  # [B, N, C*pt*ph*pw], flattened like the Conv3d weight [D, C, pt, ph, pw]
        if keep is not None:
            patches = torch.gather(patches, 1, keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
        weight = self.proj.weight.flatten(1)  # [D, C*pt*ph*pw]
        # out in the parameters' dtype (float32): the residual stream keeps full precision, bf16's 8-bit
        # mantissa would round away the small per-block updates it sums
        return F.linear(patches, weight, self.proj.bias).to(weight.dtype)  # [B, N or Nk, D]


class VisionTransformer(nn.Module):
    """Video ViT encoder. ``forward(x[B, C, T, H, W], keep[B, N] | None) -> [B, N, D]``.

    ``keep`` holds sorted t-major token indices (``t*H'*W' + h*W' + w``); only those tokens are embedded
    and processed, and RoPE uses their true grid positions. The token grid is derived from the input at
    every call, so a model built for 224 px / 16 frames also runs on 112 px or 8 frames.

    With ``out_layers`` (V-JEPA 2 convention) ``forward`` returns a list with, for each listed block index
    (0-based, ascending), that block's output passed through the shared final ``norm``.
    """

    def __init__(
        self,
        img_size: int = 224,
        num_frames: int = 16,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        rope_repeat_layout: bool = False,
        use_activation_checkpointing: bool = False,
        out_layers: list[int] | None = None,
    ) -> None:
        super().__init__()
        if img_size % patch_size or num_frames % tubelet_size:
            raise ValueError(
                f"img_size {img_size} / num_frames {num_frames} must be multiples of "
                f"patch_size {patch_size} / tubelet_size {tubelet_size}"
            )
        if out_layers is not None and any(not 0 <= i < depth for i in out_layers):
            raise ValueError(f"out_layers {out_layers} must lie in [0, {depth})")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.in_chans = in_chans
        self.rope_repeat_layout = rope_repeat_layout
        self.use_activation_checkpointing = use_activation_checkpointing
        self.out_layers = sorted(set(out_layers)) if out_layers is not None else None
        self.grid_size = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        self.num_patches = math.prod(self.grid_size)

        self.patch_embed = PatchEmbed3D(patch_size, tubelet_size, in_chans, embed_dim)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, norm_eps) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        init_transformer_weights(self, self.blocks)

    def input_grid(self, x: Tensor) -> tuple[int, int, int]:
        """Token grid (T', H', W') for an input clip [B, C, T, H, W]; refuses sizes that do not tile."""
        if x.ndim != 5 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected a clip [B, {self.in_chans}, T, H, W], got shape {tuple(x.shape)}")
        t, h, w = x.shape[2:]
        if t % self.tubelet_size or h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"clip of {t} frames at {h}x{w} px does not tile into tubelet {self.tubelet_size} x "
                f"patch {self.patch_size}"
            )
        return t // self.tubelet_size, h // self.patch_size, w // self.patch_size

    def forward(self, x: Tensor, keep: Tensor | None = None) -> Tensor | list[Tensor]:
        grid = self.input_grid(x)
        if keep is not None and (keep.ndim != 2 or keep.shape[0] != x.shape[0]):
            raise ValueError(f"keep must be [B={x.shape[0]}, N_keep], got {tuple(keep.shape)}")
        # the RoPE tables in the dtype the attention runs in, cast once here rather than in every block
        table_dtype = autocast_dtype(x.device.type) or torch.float32
        x = self.patch_embed.tokens(x, keep)  # [B, N, D] or [B, Nk, D]
        token_idx = torch.arange(x.shape[1], device=x.device) if keep is None else keep  # [N] / [B, Nk]
        cos, sin = rope_tables(
            token_idx,
            grid,
            self.embed_dim // self.num_heads,
            repeat_layout=self.rope_repeat_layout,
            dtype=table_dtype,
        )  # [1 or B, 1, N, 3d]

        outs = []
        for i, blk in enumerate(self.blocks):
            x = block_forward(blk, x, cos, sin, self.use_activation_checkpointing)  # [B, N, D]
            if self.out_layers is not None and i in self.out_layers:
                outs.append(self.norm(x))
        if self.out_layers is not None:
            return outs
        return self.norm(x)  # [B, N, D]
