"""Probe settings scored on the validation split only: what depth, step floor, epochs and world size are
chosen from. The test split is never read."""

from __future__ import annotations

from typing import Any

import numpy as np

from echojepa.probe.context import Context
from echojepa.probe.fit import TrainResult
from echojepa.probe.multiview_protocol import multiview_variants, variant_rows
from echojepa.probe.task import ProbeTask
from echojepa.probe.taskdata import MultiViewInputs
from echojepa.probe.training import train_split_views, train_task_probe, train_val_inputs


def _trivial_val_score(ptask: ProbeTask, train_y: np.ndarray, val_y: np.ndarray) -> float:
    """The validation metric of the train mean / majority class (the floor a setting must beat)."""
    if ptask.kind == "regression":
        return ptask.score(np.full(len(val_y), float(np.mean(train_y))), val_y)
    probs = np.zeros((len(val_y), int(ptask.num_classes)))
    probs[:, int(np.bincount(train_y.astype(int)).argmax())] = 1.0
    return ptask.score(probs, val_y)


def _val_summary(
    condition: str, ptask: ProbeTask, result: TrainResult, train_y: np.ndarray, val_y: np.ndarray
) -> dict[str, Any]:
    return {
        "condition": condition,
        "metric": result.val_metric_name,
        "higher_is_better": result.higher_is_better,
        "chosen": float(result.val_metrics[result.best_head]),
        "heads": [float(v) for v in result.val_metrics],
        "trivial": _trivial_val_score(ptask, train_y, val_y),
        "steps": result.steps,
        "epochs": len(result.history),
        "probe": result.probe,
        "n_train": len(train_y),
        "n_val": len(val_y),
        # the learning curve behind the figure: each validation pass's metric per head, and the mean
        # train loss per head of that epoch (the final pass is the one the head is chosen on)
        "history": [h for h in result.history if h["val"] is not None],
    }


def validation_scores(ctx: Context) -> list[dict[str, Any]]:
    """Train the task's probe(s) on the train split and score them on the validation split ONLY: the
    numbers settings (depth, step floor, epochs, world size) are chosen from. The test split is never
    read, not even extracted. One summary per condition (``internal``, or each multi-view variant)."""
    td = ctx.data("internal")
    seed = int(ctx.cfg.get("seed", 0))
    if not ctx.task.get("multiview"):
        train_in, val_in, train_y = train_val_inputs(ctx, td)
        _, ptask, result = train_task_probe(ctx, train_in, val_in, train_y, seed=seed)
        return [_val_summary("internal", ptask, result, train_y, val_in.target)]
    mv = ctx.task["multiview"]
    clips = int(mv["clips"])
    variants = multiview_variants(mv)
    wanted = ctx.cfg["protocol"].get("multiview_conditions") or list(variants)
    train_views, val = train_split_views(ctx, td, mode="all"), td.split("val", mode="all")
    out = []
    for condition in (c for c in variants if c in wanted):
        kind, views = variants[condition]
        train_rows, val_rows = variant_rows(ctx, train_views[0], views), variant_rows(ctx, val, views)
        train_y, val_y = (np.array([st.target for st in rows]) for rows in (train_rows, val_rows))
        train_in = [MultiViewInputs(v, train_rows, clips) for v in train_views]
        _, ptask, result = train_task_probe(
            ctx, train_in, MultiViewInputs(val, val_rows, clips), train_y, seed=seed, kind=kind, views=views
        )
        out.append(_val_summary(condition, ptask, result, train_y, val_y))
    return out
