"""Session-wide fixtures: the EchoSynth tiny world (written once) and small config helpers."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

# Tests never reach a tracking server or the network; keep MLflow and Lightning quiet and local.
os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///:memory:")
os.environ.setdefault("PYTHONHASHSEED", "0")
# Under pytest-xdist (`make test` runs one worker per core) each worker and the processes its tests spawn
# use one thread: two workers with two threads each would fight over the two cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _logging_left_as_found():
    """Undo what a test's logging configuration did to the process (Hydra's `dictConfig` can disable
    every existing logger and raise the root level), so a later test's caplog still sees warnings."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    logging.disable(logging.NOTSET)
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.disabled = False


@pytest.fixture(scope="session")
def synth_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tiny` EchoSynth preset (all four layouts), generated once per test session."""
    from echojepa.synth import generate

    out = tmp_path_factory.mktemp("synth-tiny")
    generate(out, "tiny", seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `small` preset (probe tests): enough videos for a probe to learn something, ~60 s to write."""
    from echojepa.synth import generate

    out = tmp_path_factory.mktemp("synth-small")
    generate(out, "small", seed=0, progress=False)
    return out
