"""The `online_probe` config group: OnlineProbeConfig (conf/online_probe/*.yaml documents every key) and
each task's TaskConfig, read strictly: an unknown key, a wrong type or an unusable value is refused with
OnlineProbeInputError, one line naming the key, before training starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from echojepa.pretrain.inputs import PretrainInputError

KINDS = ("classification", "regression")
ENCODERS = ("auto", "target", "context")


class OnlineProbeInputError(PretrainInputError):
    """The online_probe config or one of its datasets is unusable; the message is one line
    (`echojepa-train` prints it and exits 2, before training starts)."""


def _from_dict(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise OnlineProbeInputError(f"{where}: expected a mapping, got {type(raw).__name__}")
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise OnlineProbeInputError(f"{where}: unknown key(s) {unknown}; valid: {names}")
    try:
        return cls(**raw)
    except TypeError as e:  # a required key is missing
        raise OnlineProbeInputError(f"{where}: {e}") from None


def _require_int(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OnlineProbeInputError(f"{where}: expected an integer, got {value!r}")


@dataclass(frozen=True)
class TaskConfig:
    """One probe task: a labelled dataset, its label, and how many clips per split."""

    kind: str
    format: str
    root: str
    label: str
    train_size: int
    val_size: int
    reader: dict = field(default_factory=dict)
    classes: list[str] | None = None

    def check(self, where: str) -> None:
        _require_int(self.train_size, f"{where}.train_size")
        _require_int(self.val_size, f"{where}.val_size")
        if self.kind not in KINDS:
            raise OnlineProbeInputError(f"{where}.kind: {self.kind!r} is not one of {list(KINDS)}")
        if self.kind == "classification" and not self.classes:
            raise OnlineProbeInputError(f"{where}.classes: a classification task needs its class list")
        if self.train_size < 2 or self.val_size < 1:
            raise OnlineProbeInputError(f"{where}: train_size must be >= 2 and val_size >= 1")


@dataclass(frozen=True)
class OnlineProbeConfig:
    """`online_probe` in conf (conf/online_probe/*.yaml documents every key)."""

    enabled: bool
    every_n_steps: int
    tasks: dict
    encoder: str = "auto"
    alphas: list[float] = field(default_factory=lambda: [1e-2, 1e-1, 1.0, 10.0])
    batch_size: int = 16
    seed: int = 0
    references: bool = True
    pixel_cells: int = 8
    motion_cells: int = 4
    num_workers: int = 0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> OnlineProbeConfig:
        cfg = _from_dict(cls, raw, "online_probe")
        for name in ("every_n_steps", "batch_size", "seed", "pixel_cells", "motion_cells", "num_workers"):
            _require_int(getattr(cfg, name), f"online_probe.{name}")
        if cfg.encoder not in ENCODERS:
            raise OnlineProbeInputError(
                f"online_probe.encoder: {cfg.encoder!r} is not one of {list(ENCODERS)}"
            )
        if (
            min(cfg.every_n_steps, cfg.batch_size, cfg.pixel_cells, cfg.motion_cells) < 1
            or cfg.num_workers < 0
        ):
            raise OnlineProbeInputError(
                "online_probe: every_n_steps, batch_size, pixel_cells and motion_cells must be >= 1, "
                "num_workers >= 0"
            )
        if not cfg.alphas or any(a <= 0 for a in cfg.alphas):
            raise OnlineProbeInputError("online_probe.alphas: needs at least one strength, all > 0")
        tasks = {}
        for name, task in (cfg.tasks or {}).items():
            if task is None:  # `online_probe.tasks.view=null` drops a task
                continue
            parsed = _from_dict(TaskConfig, task, f"online_probe.tasks.{name}")
            parsed.check(f"online_probe.tasks.{name}")
            tasks[name] = parsed
        if cfg.enabled and not tasks:
            raise OnlineProbeInputError("online_probe: enabled but no task is configured")
        return cls(**{**{f.name: getattr(cfg, f.name) for f in fields(cls)}, "tasks": tasks})
