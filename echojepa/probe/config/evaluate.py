"""evaluate.yaml's own keys and the whole evaluation config, one field per config group.

``check_evaluate_keys`` refuses, before anything is built, a key that no reader reads (a typo such as
``probe.epoch`` or a stale ``probe.lrs``), with one line naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from echojepa.confkeys import keys, register, unknown_keys
from echojepa.paths import PathsConfig
from echojepa.probe.config.backbone import BACKBONE_KEYS
from echojepa.probe.config.probe import PROBE_KEYS
from echojepa.probe.config.protocol import ProtocolConfig
from echojepa.probe.config.task import TaskSpec
from echojepa.synth.config import WorldRef


@dataclass(frozen=True)
class BootstrapConfig:
    n_resamples: int = 1000
    alpha: float = 0.05


@dataclass(frozen=True)
class MlflowConfig:
    enabled: bool = False
    experiment_name: str = "echojepa-probe"
    tracking_uri: str | None = None


@dataclass(frozen=True)
class FrameCacheConfig:
    """`frame_cache`: decoded videos kept between feature passes (echojepa/probe/frame_store.py)."""

    enabled: bool = False
    dir: str | None = None
    short_side: int | None = None
    max_gb: float | None = None
    open_entries: int = 256
    decode_chunk: int = 128


@dataclass(frozen=True)
class EvaluateConfig:
    """evaluate.yaml as `run_probe` reads it: its own keys and one field per config group."""

    seed: int = 0  # probe seed (head init, data order, subsampling)
    feature_seed: int = 0  # feature extraction (clip jitter, degradation draws)
    device: str = "cpu"
    synth: WorldRef | None = None
    synth_root: str | None = None
    store: str | None = None
    cache_dir: str | None = None
    batch_size: int = 16
    feature_precision: str = "32-true"
    num_workers: int = 0
    frame_cache: FrameCacheConfig = field(default_factory=FrameCacheConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    probe_checkpoint: str | None = None
    paths: PathsConfig | None = None
    backbone: Any = field(default=None, metadata=keys(BACKBONE_KEYS))
    task: TaskSpec | None = None
    probe: Any = field(default=None, metadata=keys(PROBE_KEYS))
    protocol: ProtocolConfig | None = None


register("evaluate.yaml", EvaluateConfig, "echojepa.probe.runner.run_probe")


def check_evaluate_keys(cfg: dict[str, Any]) -> list[str]:
    """The dotted keys of an evaluation config that no reader reads (empty: every key is read)."""
    return unknown_keys(EvaluateConfig, cfg, "")
