"""The `probe` config group (conf/probe/*.yaml): the probe heads' kind, grid, epochs and per-task
settings, read by a schema that takes the head class's own keyword arguments (bank.head_class(kind)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from echojepa.confkeys import FREE, DictOf, Dispatch, Kwargs, keys, register
from echojepa.probe.bank import head_class
from echojepa.probe.fit import ProbeSchedule


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
