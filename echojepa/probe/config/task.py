"""The `task` config group (conf/task/*.yaml): a task's label, datasets, clip sampling and, for a
study-level task, its views.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from echojepa.confkeys import register


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
    unit: str | None = None  # the prediction bundle's unit (predict/bundle/)
    classes: list[str] | None = None
    binary: BinaryEndpoint | None = None
    clip: TaskClip = field(default_factory=TaskClip)
    multiview: MultiviewSpec | None = None


register("task", TaskSpec, "echojepa.probe (protocols, taskdata, evaluation)")
