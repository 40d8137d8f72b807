"""What both pretraining objectives share: the encoder, the optimiser, schedules, logging, FLOPs.

The LightningModules take plain dicts (what `OmegaConf.to_container` gives), so the library is
usable without Hydra, and their hyperparameters stay loadable by a weights-only checkpoint load.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn

from echojepa.models.vit import VisionTransformer
from echojepa.pretrain.optim import param_groups
from echojepa.schedules import ScheduleConfig, build_scheduler


class PretrainModule(L.LightningModule):
    """Base class: builds the context encoder and owns optimisation and per-step bookkeeping."""

    def __init__(
        self,
        encoder: dict,
        img_size: int,
        num_frames: int,
        optim: dict | None = None,
        schedule: dict | None = None,
        compile: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.encoder_cfg = dict(encoder)
        self.img_size = img_size
        self.num_frames = num_frames
        self.optim_cfg = {"weight_decay": 0.04, "betas": (0.9, 0.999), "eps": 1e-8, **(optim or {})}
        self.schedule_cfg = ScheduleConfig(**(schedule or {}))
        self.compile = compile
        self.seed = seed
        self.encoder = VisionTransformer(img_size=img_size, num_frames=num_frames, **self.encoder_cfg)
        self._grad_norm: float | None = None
        # V-JEPA 2's weight-decay rule (mask tokens decayed); EchoJEPA sets it with `official_quirks`.
        self.official_decay_rule = False
        # Analytic training GFLOPs summed over every training step so far; kept in checkpoints so a
        # resumed run continues the total instead of restarting it.
        self.gflops_total = 0.0

    def on_fit_start(self) -> None:
        # every objective draws its masks from `self.mask_generator`; ranks must not repeat each other
        self.mask_generator.stream = int(self.global_rank)

    # ----- geometry -------------------------------------------------------------------------------
    @property
    def grid_size(self) -> tuple[int, int, int]:
        t = self.num_frames // self.encoder_cfg.get("tubelet_size", 2)
        p = self.encoder_cfg.get("patch_size", 16)
        return (t, self.img_size // p, self.img_size // p)

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid_size
        return t * h * w

    @property
    def patch_dim(self) -> int:
        p = self.encoder_cfg.get("patch_size", 16)
        return self.encoder_cfg.get("in_chans", 3) * self.encoder_cfg.get("tubelet_size", 2) * p * p

    def encoder_dims(self) -> tuple[int, int, int]:
        dim = self.encoder.embed_dim
        depth = len(self.encoder.blocks)
        hidden = self.encoder.blocks[0].mlp.fc1.out_features
        return dim, depth, hidden

    # ----- optimisation ---------------------------------------------------------------------------
    def trainable_modules(self) -> list[nn.Module]:
        raise NotImplementedError  # each objective lists its own (encoder + predictor / decoder)

    def configure_optimizers(self) -> dict[str, Any]:
        groups = param_groups(
            self.trainable_modules(), self.optim_cfg["weight_decay"], official_rule=self.official_decay_rule
        )
        opt = torch.optim.AdamW(
            groups,
            lr=self.schedule_cfg.lr,
            betas=tuple(self.optim_cfg["betas"]),
            eps=self.optim_cfg["eps"],
        )
        sched = build_scheduler(opt, self.schedule_cfg)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for m in self.trainable_modules() for p in m.parameters() if p.grad is not None]
        if grads:
            norms = torch.stack([g.detach().float().norm() for g in grads])
            self._grad_norm = norms.norm().item()
            self.log("train/grad_norm", self._grad_norm, on_step=True, on_epoch=False)

    def log_common(self, loss: torch.Tensor, batch_size: int, flops_per_sample: float) -> None:
        """Loss, LR, and this step's analytic FLOPs (from this step's own masks) plus their running total.

        FLOPs are per device: `batch_size` is the local batch, and every micro-batch counts.
        """
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch_size)
        opt = self.optimizers(use_pl_optimizer=False) if self._trainer is not None else None
        if opt is not None:
            self.log("train/lr", opt.param_groups[0]["lr"], on_step=True, on_epoch=False)
        gflops = flops_per_sample * batch_size / 1e9
        self.gflops_total += gflops
        self.log("train/gflops_per_step", gflops, on_step=True, on_epoch=False)
        self.log("train/gflops_total", self.gflops_total, on_step=True, on_epoch=False)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gflops_total"] = self.gflops_total

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.gflops_total = float(checkpoint.get("gflops_total", 0.0))

    def configure_model(self) -> None:
        """Sharding (FSDP2 through ModelParallelStrategy) and torch.compile are applied here so they
        compose with the strategy; both are no-ops on a plain single-device or DDP run."""
        mesh = getattr(self, "device_mesh", None)
        if mesh is not None and not getattr(self, "_sharded", False):
            from torch.distributed.fsdp import fully_shard

            dp_mesh = mesh["data_parallel"]
            for module in self.shard_units():
                for block in module.modules():
                    if block is not module and type(block).__name__ == "Block":
                        fully_shard(block, mesh=dp_mesh)
                fully_shard(module, mesh=dp_mesh)
            self._sharded = True
        if self.compile and not getattr(self, "_compiled", False):
            for module in self.trainable_modules():
                module.compile()
            self._compiled = True

    def shard_units(self) -> list[nn.Module]:
        return self.trainable_modules()


def tokens_kept(mask_ratio: float, num_tokens: int) -> int:
    return max(1, int(math.floor(num_tokens * (1 - mask_ratio))))
