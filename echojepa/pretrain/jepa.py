"""EchoJEPA pretraining: predict the EMA target encoder's features of masked tokens from the rest.

video [B, C, T, H, W]
  -> target encoder (EMA, no grad) on all tokens -> LayerNorm (no affine)   h   [B, N, D]
  for each mask group (context idx [B, Nc], target idx [B, Nt]):
  -> context encoder on the context tokens only                              z   [B, Nc, D]
  -> predictor(z, context idx, target idx)                                   p   [B, Nt, D]
  -> L1(p, h[target idx]), averaged over groups
after every optimizer step: target <- m * target + (1 - m) * encoder

`official_quirks` (conf/objective/jepa.yaml) switches two behaviours to those of the official V-JEPA 2
code, which a replay of its trajectory needs: every mask group uses mask token 0 (its predictor wrapper
passes the clip-length index, not the group index), and AdamW decays the mask tokens (its rule is
ndim != 1 and no "bias" in the name). Off (default): mask token g for group g, tokens not decayed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from echojepa.flops import encoder_forward_flops, transformer_forward_flops
from echojepa.masks import MaskGroupConfig, MultiBlockMaskGenerator, gather_tokens
from echojepa.models.predictor import Predictor
from echojepa.pretrain.base import PretrainModule
from echojepa.pretrain.ema import ema_update, make_target, momentum_at
from echojepa.pretrain.monitor import effective_rank, feature_spread


class EchoJEPA(PretrainModule):
    def __init__(
        self,
        encoder: dict,
        predictor: dict,
        masks: list[dict],
        img_size: int,
        num_frames: int,
        optim: dict | None = None,
        schedule: dict | None = None,
        ema: dict | None = None,
        monitor_every: int = 50,
        compile: bool = False,
        seed: int = 0,
        official_quirks: bool = False,
    ) -> None:
        super().__init__(encoder, img_size, num_frames, optim, schedule, compile, seed)
        self.save_hyperparameters()
        self.predictor = Predictor(embed_dim=self.encoder.embed_dim, **predictor)
        self.official_quirks = official_quirks
        self.official_decay_rule = official_quirks
        # The mask token of each group: g for group g (ours), or 0 for all (the official wrapper).
        self.mask_token_ids = [0] * len(masks) if official_quirks else list(range(len(masks)))
        if max(self.mask_token_ids, default=0) >= len(self.predictor.mask_tokens):
            raise ValueError(f"{len(masks)} mask groups need as many predictor mask tokens")
        # Unused tokens are kept for the released checkpoint layout but frozen, so DDP sees no
        # parameter without a gradient (official AdamW skips them too: they never get a gradient).
        for i, token in enumerate(self.predictor.mask_tokens):
            if i not in self.mask_token_ids:
                token.requires_grad_(False)
        self.target_encoder = make_target(self.encoder)
        ema = {"start": 0.99925, "end": 0.99925, "ramp_steps": 0, **(ema or {})}
        self.ema_cfg = ema
        self.monitor_every = monitor_every
        self.mask_generator = MultiBlockMaskGenerator(
            self.grid_size, [MaskGroupConfig(**g) for g in masks], seed=seed
        )
        self.ema_updates = 0  # saved in checkpoints; equals the optimizer steps taken

    def trainable_modules(self) -> list[nn.Module]:
        return [self.encoder, self.predictor]

    def shard_units(self) -> list[nn.Module]:
        # The target is sharded exactly like the context encoder so EMA updates stay shard-local.
        return [self.encoder, self.target_encoder, self.predictor]

    def momentum(self) -> float:
        return momentum_at(
            self.global_step, self.ema_cfg["ramp_steps"], self.ema_cfg["start"], self.ema_cfg["end"]
        )

    # ----- the objective --------------------------------------------------------------------------
    def jepa_loss(
        self, video: torch.Tensor, groups: list | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list]:
        """The loss on `video` with `groups` [(context idx [B, Nc], target idx [B, Nt]), ...], drawn from
        the mask generator when None (given masks leave the generator's state untouched)."""
        if groups is None:
            groups = self.mask_generator(video.shape[0])
        elif len(groups) != len(self.mask_token_ids):
            raise ValueError(f"{len(groups)} mask groups given, the objective has {len(self.mask_token_ids)}")
        groups = [(c.to(video.device), t.to(video.device)) for c, t in groups]
        with torch.no_grad():
            h = self.target_encoder(video)  # [B, N, D]
            h = F.layer_norm(h, (h.shape[-1],))
        losses = []
        for token, (ctx_idx, tgt_idx) in zip(self.mask_token_ids, groups):
            z = self.encoder(video, keep=ctx_idx)  # [B, Nc, D]
            p = self.predictor(z, ctx_idx, tgt_idx, self.grid_size, mask_token_id=token)  # [B, Nt, D]
            losses.append((p - gather_tokens(h, tgt_idx)).abs().mean())
        return torch.stack(losses).mean(), h, groups

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """`batch["video"]` [B, C, T, H, W]; an optional `batch["masks"]` (the groups of `jepa_loss`)
        replaces this step's draw, as a V-JEPA mask collator would (used to replay a fixed trajectory)."""
        video = batch["video"]
        loss, h, groups = self.jepa_loss(video, batch.get("masks"))
        self.log_common(loss, video.shape[0], self.flops_per_sample(groups))
        self.log("train/momentum", self.momentum(), on_step=True, on_epoch=False)
        if self.monitor_every and self.global_step % self.monitor_every == 0:
            self.log("monitor/target_spread", feature_spread(h), on_step=True, on_epoch=False)
            self.log("monitor/target_erank", effective_rank(h), on_step=True, on_epoch=False)
        return loss

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None
    ) -> None:
        # The EMA follows every optimizer step immediately, before any callback (checkpointing) runs, so
        # a checkpoint always holds the target that matches its online weights. Lightning calls this only
        # on accumulation boundaries, so accumulation never updates the target twice.
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        ema_update(self.target_encoder, self.encoder, self.momentum())
        self.ema_updates += 1

    # ----- bookkeeping ----------------------------------------------------------------------------
    def flops_per_sample(self, groups: list) -> float:
        """Target forward on all tokens + per group: context encoder and predictor forward+backward."""
        dim, depth, hidden = self.encoder_dims()
        pred_dim = self.predictor.predictor_embed.out_features
        pred_depth = len(self.predictor.predictor_blocks)
        pred_hidden = self.predictor.predictor_blocks[0].mlp.fc1.out_features
        n = self.num_tokens
        total = encoder_forward_flops(n, dim, depth, hidden, self.patch_dim)
        for ctx_idx, tgt_idx in groups:
            nc, nt = ctx_idx.shape[1], tgt_idx.shape[1]
            total += 3 * encoder_forward_flops(nc, dim, depth, hidden, self.patch_dim)
            total += 3 * transformer_forward_flops(nc + nt, pred_dim, pred_depth, pred_hidden)
        return total

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["mask_generator"] = self.mask_generator.state_dict()
        checkpoint["ema_updates"] = self.ema_updates

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if "mask_generator" in checkpoint:
            self.mask_generator.load_state_dict(checkpoint["mask_generator"])
        self.ema_updates = int(checkpoint.get("ema_updates", 0))
