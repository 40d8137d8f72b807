"""A run killed mid-epoch and resumed reproduces the uninterrupted loss curve (CPU, deterministic)."""

from pathlib import Path

import lightning as L
import pytest
import torch

from echojepa.pretrain.build import build_module
from echojepa.pretrain.callbacks import AtomicCheckpointIO, DataPosition
from echojepa.pretrain.data import build_datamodule

from .helpers import LossRecorder, tiny_cfg


class Preempted(RuntimeError):
    pass


class Kill(L.Callback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            raise Preempted(f"killed at step {trainer.global_step}")


def _fit(cfg: dict, root: Path, steps: int, callbacks: list, ckpt_path: str | None = None):
    from lightning.pytorch.callbacks import ModelCheckpoint

    L.seed_everything(0)
    module, dm = build_module(cfg), build_datamodule(cfg)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        default_root_dir=str(root),
        plugins=[AtomicCheckpointIO()],
        callbacks=[
            ModelCheckpoint(dirpath=str(root / "ckpt"), every_n_train_steps=2, save_last=True, save_top_k=-1),
            DataPosition(),
            *callbacks,
        ],
    )
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    return module, trainer


# Worker-backed loaders start the sampler while Lightning creates the iterator, before `set_epoch`:
# every shipped data config uses workers, so the resume must hold with them too.
@pytest.mark.parametrize("objective,num_workers", [("jepa", 0), ("mae", 0), ("jepa", 1), ("jepa", 2)])
def test_killed_and_resumed_run_reproduces_the_uninterrupted_losses(
    synth_world, tmp_path, objective, num_workers
):
    cfg = tiny_cfg(objective, synth_world, **{"data.batch_size": 1, "data.num_workers": num_workers})
    steps = 9  # two epochs and one batch of the third: the resumed epoch and a fresh one after it
    full = LossRecorder()
    ref_module, ref_trainer = _fit(cfg, tmp_path / "full", steps, [full])
    batches_per_epoch = ref_trainer.num_training_batches
    assert batches_per_epoch >= 3  # so the kill below lands mid-epoch

    kill_at = batches_per_epoch + 2 if batches_per_epoch + 2 < steps else 5
    if kill_at % 2:  # the last checkpoint is at an even step; resume from there
        kill_at += 1
    first = LossRecorder()
    with pytest.raises(Preempted):
        _fit(cfg, tmp_path / "killed", steps, [first, Kill(kill_at)])
    assert len(first.losses) == kill_at
    assert kill_at % batches_per_epoch != 0  # mid-epoch

    last = tmp_path / "killed" / "ckpt" / "last.ckpt"
    second = LossRecorder()
    module, _ = _fit(cfg, tmp_path / "killed", steps, [second], ckpt_path=str(last))
    assert first.losses + second.losses == pytest.approx(full.losses, abs=1e-6)
    for a, b in zip(module.state_dict().values(), ref_module.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
