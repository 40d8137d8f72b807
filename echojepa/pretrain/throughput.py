"""What sets a pretraining step's pace besides the model: waiting for data, and the precision.

`DataWait` logs how long each step waited for its batch (`train/data_wait_s`) and what fraction of the
step that was (`train/data_wait_frac`); a compute-bound run keeps the fraction near 0. `BF16Check`
warns when bf16 autocast is asked for on a CPU whose matmuls have no native bf16 kernels, where it is
several times slower than float32 (`make bench` shows both side by side).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import lightning as L

from echojepa.precision import cpu_has_native_bf16

log = logging.getLogger(__name__)


class DataWait(L.Callback):
    """Per step: seconds the loop blocked in the train loader's `next()` and their share of the step.

    Needs a loader with a `wait_s` counter (echojepa.data.datamodules.ResumableDataLoader); otherwise it
    logs nothing. A step is the time from the previous step's end to this one's (the first from the start
    of training), so the share covers everything the loop did in between. `fraction()` is the share over
    the run after the first step, which also pays for starting the loader workers.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.steps = 0
        self.wait_s = 0.0  # after the first step
        self.step_s = 0.0
        self._last_end: float | None = None
        self._last_wait = 0.0

    @staticmethod
    def _loader_wait(trainer: L.Trainer) -> float | None:
        wait = getattr(trainer.train_dataloader, "wait_s", None)
        return float(wait) if wait is not None else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = self.clock()
        self._last_wait = self._loader_wait(trainer) or 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        total_wait = self._loader_wait(trainer)
        now = self.clock()
        if total_wait is None or self._last_end is None:
            return
        # a fresh loader (a new epoch without persistent workers) may restart its counter
        wait = total_wait - self._last_wait if total_wait >= self._last_wait else total_wait
        step = max(now - self._last_end, 1e-12)
        self._last_end, self._last_wait = now, total_wait
        if self.steps > 0:
            self.wait_s += wait
            self.step_s += step
        self.steps += 1
        pl_module.log("train/data_wait_s", wait, on_step=True, on_epoch=False)
        pl_module.log("train/data_wait_frac", min(wait / step, 1.0), on_step=True, on_epoch=False)

    def fraction(self) -> float:
        """Waiting time / step time over the run after the first step (nan before two steps)."""
        return self.wait_s / self.step_s if self.step_s > 0 else float("nan")


class BF16Check(L.Callback):
    """One warning at the start of a CPU run with a bf16 precision on a CPU without native bf16."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        precision = str(trainer.precision)
        if precision.startswith("bf16") and pl_module.device.type == "cpu" and not cpu_has_native_bf16():
            log.warning(
                "trainer.precision=%s on a CPU without native bf16 matmuls (no AVX512-BF16 / AMX): bf16 "
                "steps run several times slower than 32-true here (see `make bench`)",
                precision,
            )


def throughput_callbacks() -> list[L.Callback]:
    """The callbacks a pretraining run adds: data wait logging and the bf16 check."""
    return [DataWait(), BF16Check()]
