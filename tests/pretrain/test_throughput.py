"""Data wait logging (how long each step waited for its batch) and the bf16-on-CPU warning."""

import logging

import lightning as L
import pytest
import torch
from torch import nn

from echojepa.data.datamodules import ResumableDataLoader
from echojepa.pretrain import throughput
from echojepa.pretrain.throughput import BF16Check, DataWait

DATA_S, COMPUTE_S = 1.0, 3.0  # fake seconds: making one batch, one training step


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ClockedBatches(torch.utils.data.Dataset):
    def __init__(self, clock: Clock, n: int) -> None:
        self.clock, self.n = clock, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        self.clock.now += DATA_S
        return torch.full((2,), float(i))


class Tiny(L.LightningModule):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        self.clock.now += COMPUTE_S
        return self.layer(batch).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def trainable_modules(self):
        return [self.layer]


def fit(tmp_path, clock: Clock, callbacks: list, steps: int = 5, **kwargs) -> L.Trainer:
    loader = ResumableDataLoader(ClockedBatches(clock, 50), batch_size=1, clock=clock)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=callbacks,
        **kwargs,
    )
    trainer.fit(Tiny(clock), loader)
    return trainer


def test_data_wait_is_logged_per_step_with_its_share_of_the_step(tmp_path):
    clock = Clock()
    wait = DataWait(clock=clock)
    trainer = fit(tmp_path, clock, [wait])
    # each step after the first waits for one batch (DATA_S) and computes (COMPUTE_S); the first also
    # waits for the batch the loop prefetches, so the run's share leaves it out
    share = DATA_S / (DATA_S + COMPUTE_S)
    assert trainer.callback_metrics["train/data_wait_s"].item() == pytest.approx(DATA_S)
    assert trainer.callback_metrics["train/data_wait_frac"].item() == pytest.approx(share)
    assert wait.steps == 5
    assert wait.fraction() == pytest.approx(share)


def test_data_wait_logs_nothing_for_a_loader_without_a_wait_counter(tmp_path):
    clock = Clock()
    wait = DataWait(clock=clock)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=[wait],
    )
    trainer.fit(Tiny(clock), torch.utils.data.DataLoader(ClockedBatches(clock, 10), batch_size=1))
    assert "train/data_wait_s" not in trainer.callback_metrics
    assert wait.steps == 0 and wait.fraction() != wait.fraction()  # nan


@pytest.mark.parametrize(("native", "warned"), [(False, True), (True, False)])
def test_bf16_on_a_cpu_without_native_bf16_is_warned_once(tmp_path, monkeypatch, caplog, native, warned):
    monkeypatch.setattr(throughput, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level(logging.WARNING, logger="echojepa.pretrain.throughput"):
        fit(tmp_path, Clock(), [BF16Check()], steps=1, precision="bf16-mixed")
        fit(tmp_path, Clock(), [BF16Check()], steps=1, precision="32-true")
    assert caplog.text.count("without native bf16") == (1 if warned else 0)
