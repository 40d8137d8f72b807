"""Lightning plumbing for safe, resumable runs: atomic weights-only checkpoints (single files and
FSDP2 sharded folders), checks of a checkpoint before a resume, and the data position."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.strategies import ModelParallelStrategy

from echojepa.io.atomic import atomic_torch_save, fsync_dir
from echojepa.io.weights import weights_file_problem

# A sharded (FSDP2) checkpoint folder: Lightning's non-tensor state and the distributed checkpoint's
# index, both written after the shards.
SHARDED_META = "meta.pt"
SHARDED_INDEX = ".metadata"
# Every Lightning training checkpoint carries this key; exports such as reference.pt do not.
LIGHTNING_KEY = "pytorch-lightning_version"


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


def _aside(path: Path) -> Path:
    """Where the previous sharded checkpoint sits while the new one is renamed into place."""
    return path.with_name(f".{path.name}.old")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(folder)


def publish_folder(staging: Path, path: Path) -> None:
    """Move a completely written checkpoint folder to `path`, replacing what is there.

    A folder cannot be renamed over a non-empty one, so the previous checkpoint is first renamed aside
    (`.<name>.old`) and deleted only after the new one is in place: at every instant `path` is absent,
    the old checkpoint or the new one, never a mix.
    """
    _fsync_tree(staging)
    aside = _aside(path)
    _remove(aside)
    if path.exists() or path.is_symlink():
        os.replace(path, aside)
    os.replace(staging, path)
    fsync_dir(path.parent)
    _remove(aside)


def checkpoint_problem(path: str | os.PathLike[str]) -> str | None:
    """Why `path` is not a Lightning training checkpoint to resume from (a file, or an FSDP2 sharded
    folder), or None when it is one. The reason is short, for a one-line message after the path."""
    path = Path(path)
    if not path.exists():
        if _aside(path).is_dir():
            return (
                f"no such file or folder; a run was killed while replacing it and left the previous "
                f"checkpoint complete at {_aside(path)}"
            )
        return "no such file or folder"
    sharded = path.is_dir()
    if sharded:
        missing = [n for n in (SHARDED_META, SHARDED_INDEX) if not (path / n).is_file()]
        if missing:
            return f"a folder but not a complete sharded checkpoint (no {' or '.join(missing)})"
        problem, obj = weights_file_problem(path / SHARDED_META, mmap=True)
        if problem:
            return f"{SHARDED_META}: {problem}"
    else:
        problem, obj = weights_file_problem(path, mmap=True)
        if problem:
            return problem
    if not isinstance(obj, dict) or LIGHTNING_KEY not in obj:
        hint = (
            "; it is an exported encoder (reference layout): start from it with init_from="
            if isinstance(obj, dict) and "encoder" in obj
            else ""
        )
        return f"not a Lightning training checkpoint (no {LIGHTNING_KEY!r}){hint}"
    if not sharded and "state_dict" not in obj:
        return "a Lightning checkpoint without model weights (no 'state_dict')"
    return None


class AtomicModelParallelStrategy(ModelParallelStrategy):
    """Lightning's ModelParallelStrategy (FSDP2) with checkpoints that are never half-read.

    The stock strategy bypasses CheckpointIO and writes a sharded checkpoint straight into its folder,
    so a run killed while overwriting `last.ckpt` leaves new shards beside old metadata. Here every rank
    writes into a hidden staging folder beside the target; once all ranks are done, rank 0 fsyncs it and
    swaps it into place (`publish_folder`). Loading first checks the folder is a complete checkpoint.
    With `save_distributed_checkpoint=False` the single file already goes through AtomicCheckpointIO.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: Any, storage_options: Any = None) -> None:
        if not self._save_distributed_checkpoint:
            super().save_checkpoint(checkpoint, filepath, storage_options)
            return
        path = Path(self.broadcast(filepath))  # every rank writes where rank 0 says
        staging = path.with_name(f".{path.name}.partial")
        if self.global_rank == 0:
            _remove(staging)  # the leftover of a write that was killed
        self.barrier("checkpoint-staging")
        super().save_checkpoint(checkpoint, staging, storage_options)
        self.barrier("checkpoint-written")  # every shard and rank 0's meta.pt are on disk
        if self.global_rank == 0:
            publish_folder(staging, path)
        self.barrier("checkpoint-published")

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> dict[str, Any]:
        if weights_only is False:
            raise ValueError(f"{checkpoint_path}: refusing a non-weights-only checkpoint load")
        path = Path(self.broadcast(checkpoint_path))
        problem = checkpoint_problem(path)
        if problem:
            raise ValueError(f"{path}: {problem}")
        return super().load_checkpoint(path, weights_only=True)
