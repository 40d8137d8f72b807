"""Lightning plumbing for safe, resumable runs: atomic weights-only checkpoints and data position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from echojepa.io.atomic import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes every checkpoint to a temporary file and renames it into place, so a run killed during
    a write never leaves a corrupt `last.ckpt`; loads with `weights_only=True` (no pickled code runs)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_torch_save(checkpoint, Path(path))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        if weights_only is False:
            raise ValueError(f"{path}: refusing a non-weights-only checkpoint load")
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


class DataPosition(L.Callback):
    """Tells a resumable train loader how many batches of the current epoch were consumed, so the
    checkpoint records the true data position (the loader itself runs ahead by its prefetch)."""

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        loader = trainer.train_dataloader
        if hasattr(loader, "mark_consumed"):
            loader.mark_consumed(batch_idx + 1)
