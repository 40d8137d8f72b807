"""EchoMAE, the compute-matched reconstruction baseline.

    video [B, C, T, H, W] -> tube mask (same spatial mask at every time step, 90 % masked)
      -> encoder on the visible tokens only                  z [B, Nv, D]
      -> light decoder (mask tokens at masked positions)     x [B, Nm, patch_dim]
      -> MSE against per-patch-normalised pixels of the masked patches

Compute matching (see README): both objectives use the same encoder, data, clip sampling, batch size
and number of optimizer steps; each logs its analytic training FLOPs of every step from that step's
masks (`train/gflops_per_step`) and their running total (`train/gflops_total`), so the residual
compute difference of the two objectives is visible.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from echojepa.flops import encoder_forward_flops, transformer_forward_flops
from echojepa.masks import TubeMaskGenerator, gather_tokens
from echojepa.models.mae import MAEDecoder, normalise_patches, patchify
from echojepa.pretrain.base import PretrainModule


class EchoMAE(PretrainModule):
    def __init__(
        self,
        encoder: dict,
        decoder: dict,
        img_size: int,
        num_frames: int,
        mask_ratio: float = 0.9,
        optim: dict | None = None,
        schedule: dict | None = None,
        compile: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(encoder, img_size, num_frames, optim, schedule, compile, seed)
        self.save_hyperparameters()
        self.decoder = MAEDecoder(self.encoder.embed_dim, self.patch_dim, **decoder)
        self.mask_ratio = mask_ratio
        self.mask_generator = TubeMaskGenerator(self.grid_size, ratio=mask_ratio, seed=seed)

    def trainable_modules(self) -> list[nn.Module]:
        return [self.encoder, self.decoder]

    def mae_loss(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        keep, masked = (m.to(video.device) for m in self.mask_generator(video.shape[0]))
        z = self.encoder(video, keep=keep)  # [B, Nv, D]
        pred = self.decoder(z, keep, masked, grid_size=self.grid_size)  # [B, Nm, patch_dim]
        p = self.encoder_cfg.get("patch_size", 16)
        t = self.encoder_cfg.get("tubelet_size", 2)
        target = normalise_patches(gather_tokens(patchify(video, p, t), masked))  # [B, Nm, patch_dim]
        return F.mse_loss(pred, target), keep, masked

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        video = batch["video"]
        loss, keep, masked = self.mae_loss(video)
        self.log_common(loss, video.shape[0], self.flops_per_sample(keep.shape[1], masked.shape[1]))
        return loss

    def flops_per_sample(self, n_visible: int, n_masked: int) -> float:
        dim, depth, hidden = self.encoder_dims()
        body = self.decoder.body
        dec_dim = body.predictor_embed.out_features
        dec_depth = len(body.predictor_blocks)
        dec_hidden = body.predictor_blocks[0].mlp.fc1.out_features
        enc = encoder_forward_flops(n_visible, dim, depth, hidden, self.patch_dim)
        dec = transformer_forward_flops(n_visible + n_masked, dec_dim, dec_depth, dec_hidden)
        return 3 * (enc + dec)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["mask_generator"] = self.mask_generator.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "mask_generator" in checkpoint:
            self.mask_generator.load_state_dict(checkpoint["mask_generator"])
