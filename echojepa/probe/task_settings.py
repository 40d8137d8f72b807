"""A task's own probe budget: ``probe.task_epochs``, ``probe.task_grid`` and ``probe.task_aug_views``
(task name -> epochs, task name -> one of ``probe.grids``, task name -> augmented training views),
resolved into ``probe.epochs``, ``probe.grid`` and ``probe.aug_views`` before a run, so the training
loop, the feature passes, the MLflow params and the records all read the task's values and nothing else
has to know these keys exist. Like ``task_depth`` they are chosen on validation (conf/probe/,
conf/study/)."""

from __future__ import annotations

import copy
from typing import Any

from echojepa.probe.errors import ProbeInputError


def with_task_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """cfg with ``probe.epochs`` / ``probe.grid`` (and ``grid_preset``) / ``probe.aug_views`` set from the
    task's entries, if any; cfg itself is returned when the task has none. An unknown grid name or a bad
    count is refused in one line."""
    probe, task = cfg["probe"], cfg["task"]["name"]
    epochs = (probe.get("task_epochs") or {}).get(task)
    grid = (probe.get("task_grid") or {}).get(task)
    views = (probe.get("task_aug_views") or {}).get(task)
    if epochs is None and grid is None and views is None:
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
    if views is not None:
        if isinstance(views, bool) or not isinstance(views, int) or views < 0:
            raise ProbeInputError(f"probe.task_aug_views.{task}: must be an integer >= 0, got {views!r}")
        out["probe"]["aug_views"] = views
    return out
