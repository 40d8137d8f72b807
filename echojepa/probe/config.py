"""The config groups of a probe evaluation (evaluate.yaml: backbone, task, probe, protocol and its own
keys), each as the schema of its reader, registered with echojepa.confkeys.

``check_evaluate_keys`` refuses, before anything is built, a key that no reader reads (a typo such as
``probe.epoch`` or a stale ``probe.lrs``), with one line naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from echojepa.confkeys import FREE, DictOf, Dispatch, Kwargs, keys, register, unknown_keys
from echojepa.data.preprocess import PREPROCESS_KEYS
from echojepa.paths import PathsConfig
from echojepa.probe.bank import head_class
from echojepa.probe.fit import ProbeSchedule
from echojepa.synth.config import WorldRef

# ----- probe (conf/probe/*.yaml) ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectionConfig:
    """`probe.projection`: the fixed train-fit map to the probe width (echojepa/probe/project.py)."""

    fit_tokens: int = 32768
    eps: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class GridConfig:
    """One lr x wd (x seed) grid of heads (bank.grid_specs)."""

    lr: list[float]
    wd: list[float]
    seeds: list[int] = field(default_factory=lambda: [0])


@dataclass(frozen=True)
class ProbeConfig:
    """conf/probe/*.yaml. ``head`` is the head class's keyword arguments (bank.head_class(kind)), less
    what the code sets: the widths, the token grid and, for the multi-view kinds, the views, clips per
    view and view dropout, which are the task's (conf/task: multiview)."""

    kind: str
    grid: GridConfig
    epochs: int
    head: dict = field(default_factory=dict)
    width: int | None = None
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    task_depth: dict = field(default_factory=dict)  # task name -> attentive depth
    task_space_grid: dict = field(default_factory=dict)  # task name -> [rows, cols] (probe/space_pool.py)
    task_motion: dict = field(default_factory=dict)  # task name -> motion tokens on/off (probe/motion.py)
    task_epochs: dict = field(default_factory=dict)  # task name -> epochs (probe/task_settings.py)
    task_grid: dict = field(default_factory=dict)  # task name -> one of `grids` (probe/task_settings.py)
    task_aug_views: dict = field(default_factory=dict)  # task name -> aug_views (probe/task_settings.py)
    grid_preset: str | None = None  # which of `grids` is `grid` (by interpolation)
    grids: dict[str, GridConfig] = field(default_factory=dict)
    min_steps: int = 0
    val_passes: int | None = None
    heads_per_pass: int | None = None
    batch_size: int = 32
    precision: str = "32-true"  # the heads' training autocast (echojepa.precision; not the features')
    aug_views: int = 0
    schedule: dict = field(default_factory=dict, metadata=keys(Kwargs(ProbeSchedule)))


# set by the code (bank.build_probe_bank, protocols.bank_config), never by a probe config
HEAD_SET_BY_CODE = (
    "embed_dim",
    "in_dim",
    "out_dim",
    "token_grid",
    "num_views",
    "clips_per_view",
    "view_dropout",
)


def _probe_schema(raw: Any) -> Any:
    try:
        head = Kwargs(head_class(str(raw.get("kind"))), exclude=HEAD_SET_BY_CODE)
    except ValueError:
        head = FREE  # an unknown kind is refused by the bank, naming the valid ones
    return Kwargs(
        ProbeConfig,
        nested={
            "head": head,
            "grid": GridConfig,
            "grids": DictOf(GridConfig),
            "projection": ProjectionConfig,
            "schedule": Kwargs(ProbeSchedule),
        },
    )


PROBE_KEYS = Dispatch(_probe_schema)
register("probe", PROBE_KEYS, "echojepa.probe (bank.build_probe_bank, fit.probe_schedule, project)")

# ----- task (conf/task/*.yaml) --------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskClip:
    """`task.clip`: the protocol's clip sampling (Preprocess.clip_spec; null keeps the backbone's)."""

    frames: int | None = None
    frame_step: int | None = None
    target_fps: float | None = None
    segments: int = 1


@dataclass(frozen=True)
class BinaryEndpoint:
    """`task.binary`: the AUROC endpoint of a regression task (results.regression_report)."""

    name: str
    threshold: float
    positive: str  # "below" | "above"


@dataclass(frozen=True)
class MultiviewSpec:
    """`task.multiview`: a study-level task (views x contiguous clips); the multi-view probes read their
    views, clips per view and view dropout here only."""

    views: list[str]
    clips: int
    single_view: str
    view_dropout: float = 0.10


@dataclass(frozen=True)
class DatasetSpec:
    """One of `task.datasets` (internal / external / pediatric): a dataset reader and its options."""

    format: str
    root: str
    reader: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    """conf/task/*.yaml."""

    name: str
    kind: str  # regression | classification
    label: str
    datasets: dict[str, DatasetSpec]
    val_metric: str | None = None
    unit: str | None = None  # the prediction bundle's unit (predict/bundle.py)
    classes: list[str] | None = None
    binary: BinaryEndpoint | None = None
    clip: TaskClip = field(default_factory=TaskClip)
    multiview: MultiviewSpec | None = None


register("task", TaskSpec, "echojepa.probe (protocols, taskdata, evaluation)")

# ----- protocol (conf/protocol/*.yaml) ------------------------------------------------------------------


@dataclass(frozen=True)
class ProtocolConfig:
    """conf/protocol/*.yaml."""

    name: str
    test_time: str = "one_clip"  # one_clip | all_clips
    conditions: list[str] = field(default_factory=lambda: ["internal"])
    multiview_conditions: list[str] | None = None  # standard, multi-view tasks
    fractions: list[float] | None = None  # sample_efficiency
    seeds: list[int] | None = None  # sample_efficiency
    min_patients: int = 1  # sample_efficiency


register("protocol", ProtocolConfig, "echojepa.probe.protocols")

# ----- backbone (conf/backbone/*.yaml) ------------------------------------------------------------------


@dataclass(frozen=True)
class _BackboneCommon:
    kind: str
    name: str | None = None
    category: str | None = None  # the report's row category (runner.backbone_kind)
    preprocess: dict = field(default_factory=dict, metadata=keys(PREPROCESS_KEYS))


@dataclass(frozen=True)
class VitBackboneConfig(_BackboneCommon):
    """kind checkpoint / vjepa2 (a pretrained ViT's weights) or random (a seeded random-init ViT)."""

    checkpoint: str | None = None
    which: str = "target_encoder"
    model: Any = None  # a conf/model preset name or an inline preset
    rope_repeat_layout: bool | None = None
    seed: int = 0  # random


@dataclass(frozen=True)
class PixelStatsBackboneConfig(_BackboneCommon):
    grid: int = 8
    tubelet: int = 2
    layout: str = "cells"


@dataclass(frozen=True)
class EchoPrimeBackboneConfig(_BackboneCommon):
    weights: str | None = None
    allow_random: bool = False
    embed_dim: int = 512
    output: str = "embedding"
    seed: int = 0


@dataclass(frozen=True)
class PanEchoBackboneConfig(_BackboneCommon):
    weights: str | None = None
    allow_random: bool = False
    num_layers: int = 4
    num_heads: int = 8
    clip_len: int = 16
    upstream_frame_reshape: bool = True
    output: str = "tokens"
    seed: int = 0


BACKBONE_SCHEMAS: dict[str, type] = {
    "checkpoint": VitBackboneConfig,
    "vjepa2": VitBackboneConfig,
    "random": VitBackboneConfig,
    "pixel_stats": PixelStatsBackboneConfig,
    "echoprime": EchoPrimeBackboneConfig,
    "panecho": PanEchoBackboneConfig,
}


def _backbone_schema(raw: Any) -> Any:
    return BACKBONE_SCHEMAS.get(str(raw.get("kind")), _BackboneCommon)


BACKBONE_KEYS = Dispatch(_backbone_schema)
register("backbone", BACKBONE_KEYS, "echojepa.probe.backbones.build_backbone")

# ----- evaluate.yaml ------------------------------------------------------------------------------------


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
