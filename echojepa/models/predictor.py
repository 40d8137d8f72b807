"""JEPA predictor (V-JEPA 2 layout): predicts target-token features from context-token features.

Context features are embedded to the predictor width, a learned mask token is placed at every target
position, the joint sequence is sorted by original token index (so RoPE sees the real layout), run
through transformer blocks, normed, unsorted, and the target part is projected back to the encoder width.
Under autocast it follows the encoder's rules (echojepa.models.vit): bf16 matmuls, a float32 residual
stream, and a float32 output (the parameters' dtype), so the loss is computed in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from echojepa.models.rope import rope_tables
from echojepa.models.vit import Block, autocast_dtype, block_forward, init_transformer_weights


class Predictor(nn.Module):
    """``forward(ctx[B, Nc, D], ctx_idx[B, Nc], tgt_idx[B, Nt], grid_size) -> [B, Nt, D]``."""

    def __init__(
        self,
        embed_dim: int = 1024,
        predictor_embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        num_mask_tokens: int = 10,
        rope_repeat_layout: bool = False,
        norm_eps: float = 1e-6,
        use_activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if num_mask_tokens < 1:
            raise ValueError(f"num_mask_tokens must be >= 1, got {num_mask_tokens}")
        self.embed_dim = embed_dim
        self.predictor_embed_dim = predictor_embed_dim
        self.num_heads = num_heads
        self.rope_repeat_layout = rope_repeat_layout
        self.use_activation_checkpointing = use_activation_checkpointing

        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim)
        # ParameterList gives the released names mask_tokens.0, mask_tokens.1, ...
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, predictor_embed_dim)) for _ in range(num_mask_tokens)
        )
        self.predictor_blocks = nn.ModuleList(
            Block(predictor_embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_eps=norm_eps)
            for _ in range(depth)
        )
        self.predictor_norm = nn.LayerNorm(predictor_embed_dim, eps=norm_eps)
        self.predictor_proj = nn.Linear(predictor_embed_dim, embed_dim)
        init_transformer_weights(self, self.predictor_blocks)  # mask tokens are Parameters: stay zero

    def forward(
        self,
        ctx: Tensor,
        ctx_idx: Tensor,
        tgt_idx: Tensor,
        grid_size: tuple[int, int, int],
        mask_token_id: int = 0,
    ) -> Tensor:
        if not 0 <= mask_token_id < len(self.mask_tokens):
            raise ValueError(f"mask_token_id {mask_token_id} not in [0, {len(self.mask_tokens)})")
        b, n_ctx, _ = ctx.shape
        if ctx_idx.shape != (b, n_ctx) or tgt_idx.ndim != 2 or tgt_idx.shape[0] != b:
            raise ValueError(
                f"index shapes {tuple(ctx_idx.shape)} / {tuple(tgt_idx.shape)} do not match context "
                f"{tuple(ctx.shape)}"
            )
        # the residual stream in the parameters' dtype: float32 under autocast (a no-op without it)
        x = self.predictor_embed(ctx).to(self.predictor_embed.weight.dtype)  # [B, Nc, P]
        mask = self.mask_tokens[mask_token_id].expand(b, tgt_idx.shape[1], -1)  # [B, Nt, P]
        x = torch.cat([x, mask.to(x.dtype)], dim=1)  # [B, Nc+Nt, P]
        idx = torch.cat([ctx_idx, tgt_idx], dim=1)  # [B, Nc+Nt]

        order = torch.argsort(idx, dim=1)  # [B, Nc+Nt]
        idx = torch.gather(idx, 1, order)
        x = torch.gather(x, 1, order.unsqueeze(-1).expand_as(x))
        cos, sin = rope_tables(
            idx,
            grid_size,
            self.predictor_embed_dim // self.num_heads,
            repeat_layout=self.rope_repeat_layout,
            dtype=autocast_dtype(x.device.type) or torch.float32,  # cast once, not in every block
        )  # [B, 1, Nc+Nt, 3d]
        for blk in self.predictor_blocks:
            x = block_forward(blk, x, cos, sin, self.use_activation_checkpointing)  # [B, Nc+Nt, P]
        x = self.predictor_norm(x)

        unsort = torch.argsort(order, dim=1)  # [B, Nc+Nt]
        x = torch.gather(x, 1, unsort.unsqueeze(-1).expand_as(x))
        out = self.predictor_proj(x[:, n_ctx:])  # [B, Nt, D]
        return out.to(self.predictor_proj.weight.dtype)  # float32 under autocast: the loss is taken on it
