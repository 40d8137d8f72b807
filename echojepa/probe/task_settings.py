"""A task's own probe budget: ``probe.task_epochs`` and ``probe.task_grid`` (task name -> epochs, task
name -> one of ``probe.grids``), resolved into ``probe.epochs`` and ``probe.grid`` before a run, so the
training loop, the MLflow params and the records all read the task's values and nothing else has to
know these keys exist. Like ``task_depth`` they are chosen on validation (conf/probe/, conf/study/)."""

from __future__ import annotations

import copy
from typing import Any

from echojepa.probe.errors import ProbeInputError


def with_task_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """cfg with ``probe.epochs`` / ``probe.grid`` (and ``grid_preset``) set from the task's entries, if
    any; cfg itself is returned when the task has none. An unknown grid name is refused in one line."""
    probe, task = cfg["probe"], cfg["task"]["name"]
    epochs = (probe.get("task_epochs") or {}).get(task)
    grid = (probe.get("task_grid") or {}).get(task)
    if epochs is None and grid is None:
        return cfg
    out = copy.deepcopy(cfg)
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ProbeInputError(f"probe.task_epochs.{task}: must be an integer >= 1, got {epochs!r}")
        out["probe"]["epochs"] = epochs
    if grid is not None:
        grids = probe.get("grids") or {}
        if grid not in grids:
            raise ProbeInputError(
                f"probe.task_grid.{task}: no grid {grid!r} in probe.grids (has {', '.join(sorted(grids))})"
            )
        out["probe"]["grid"] = copy.deepcopy(grids[grid])
        out["probe"]["grid_preset"] = grid
    return out
