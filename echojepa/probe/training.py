"""A task's probe trained on cached features, as every protocol trains it.

The bank comes from the probe config (``bank_config``: the task's attentive depth, the multi-view layout);
every head of its lr x wd grid trains in one pass (``echojepa.probe.fit``) and one head is chosen on the
validation split.

One probe for every backbone: heads are built at ``probe.width`` whatever the backbone's token width, and
take its tokens through a fixed projection fit on the cached TRAIN tokens (``echojepa.probe.project``;
fit once per train cache entry and run, labels never read); attentive heads get the backbone's token grid
for their fixed space-time position code. ``probe.task_depth`` sets the attentive depth per task and
``probe.task_space_grid`` its spatial pooling (``echojepa.probe.space_pool``), ``probe.task_motion`` its
motion tokens (``echojepa.probe.motion``); all chosen on validation, see conf/probe/.

Augmented training views (``probe.aug_views`` = k > 0): the train split is cached k times with the
training transform, and epoch e trains on view ``aug_view_for_epoch(e, k, seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from echojepa.probe.bank import ATTENTIVE_KINDS, ProbeBank, build_probe_bank
from echojepa.probe.context import Context
from echojepa.probe.errors import ProbeInputError
from echojepa.probe.feature_cache import aug_view_for_epoch
from echojepa.probe.fit import TrainResult, predict_bank, probe_schedule, train_probe_bank
from echojepa.probe.project import projection_for
from echojepa.probe.task import ProbeTask
from echojepa.probe.taskdata import SingleViewInputs, SplitData, TaskData, clip_spec, loader, targets


def probe_task(task: Mapping[str, Any], train_target: np.ndarray) -> ProbeTask:
    if task["kind"] == "regression":
        return ProbeTask(kind="regression", val_metric=task.get("val_metric")).with_train_targets(
            train_target
        )
    classes = list(task["classes"])
    return ProbeTask(
        kind="classification",
        num_classes=len(classes),
        val_metric=task.get("val_metric"),
        class_names=classes,
    )


def bank_config(
    probe: Mapping[str, Any], task: Mapping[str, Any], kind: str | None, views: list[str]
) -> dict[str, Any]:
    """The probe config a bank is built from for this task: the task's attentive depth
    (``probe.task_depth``), spatial pooling (``probe.task_space_grid``) and motion tokens
    (``probe.task_motion``), and for multi-view kinds the
    task's views, clips and view dropout."""
    cfg = dict(probe)
    head = dict(probe.get("head") or {})
    depth = (probe.get("task_depth") or {}).get(task["name"])
    if depth is not None and (kind or probe["kind"]) in ATTENTIVE_KINDS:
        head["depth"] = int(depth)  # the depth chosen on validation for this task (conf/probe/)
    space = (probe.get("task_space_grid") or {}).get(task["name"])
    if space is not None and (kind or probe["kind"]) in ATTENTIVE_KINDS:
        head["space_grid"] = [int(g) for g in space]  # spatial pooling chosen on validation (conf/probe/)
    if (probe.get("task_motion") or {}).get(task["name"]):
        if (kind or probe["kind"]) != "attentive":
            raise ValueError(
                f"probe.task_motion.{task['name']}: motion tokens are an attentive-probe stage; "
                f"probe kind {kind or probe['kind']!r} has none (probe/motion.py)"
            )
        head["motion"] = True  # motion tokens chosen on validation for this task (conf/probe/)
    multiview = kind or probe["kind"]
    if multiview in ("multiview", "late_fusion"):
        # the views, clips per view and view dropout are the task's (conf/task: multiview), never the probe's
        mv = task.get("multiview")
        if not mv:
            raise ValueError(
                f"probe kind {multiview!r} needs a multi-view task; task {task['name']!r} has none"
            )
        head.pop("num_queries", None) if multiview == "late_fusion" else None
        head.update(
            num_views=len(views or mv["views"]),
            clips_per_view=int(mv["clips"]),
            view_dropout=float(mv["view_dropout"]),
        )
        cfg.update(kind=multiview)
    cfg.update(head=head)
    return cfg


def token_grid(ctx: Context, num_tokens: int) -> list[int] | None:
    """The backbone's (T', H', W') token grid over one clip of this task, checked against the cached
    token count; None when its tokens do not tile the clip (the position code then reads token order)."""
    pre = ctx.backbone.preprocess
    frames = clip_spec(ctx.task, ctx.backbone).frames
    grid = ctx.backbone.token_grid((3, frames, pre.img_size, pre.img_size))
    if grid is None:
        return None
    if math.prod(grid) != num_tokens:
        raise ValueError(
            f"backbone {ctx.backbone.name}: token grid {tuple(grid)} does not give the {num_tokens} cached "
            "tokens per clip"
        )
    return [int(g) for g in grid]


def train_projection(ctx: Context, train: SplitData, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed map to the probe width, fit on this train cache entry's tokens (all of its items: no
    label is read, so a label-subsampled run may use them) once per run."""
    memo = (train.features.key, int(width))
    if memo not in ctx.projections:
        ctx.projections[memo] = projection_for(
            train.tokens, train.num_clips, int(width), ctx.probe.get("projection")
        )
    return ctx.projections[memo]


def train_loaders(
    views: Sequence[Dataset], batch_size: int, seed: int, multiview: bool = False
) -> Callable[[int], DataLoader]:
    """epoch -> the shuffled loader the probe trains on in that epoch: over the one training view, or,
    with several cached augmented views, over view ``aug_view_for_epoch(epoch, len(views), seed)``."""
    if not views:
        raise ValueError("no training view")

    def for_epoch(epoch: int) -> DataLoader:
        v = aug_view_for_epoch(epoch, len(views), seed) if len(views) > 1 else 0
        return loader(views[v], batch_size, True, seed * 1000 + epoch, multiview)

    return for_epoch


def train_split_views(ctx: Context, td: TaskData, mode: str = "center") -> list[SplitData]:
    """The train split as the probe sees it: one deterministic view, or with ``probe.aug_views`` = k > 0,
    k cached augmented views (training transform; view v draws its randomness as dataset epoch v)."""
    k = ctx.probe.get("aug_views") or 0
    if not isinstance(k, int) or k < 0:
        raise ProbeInputError(f"probe.aug_views must be an integer >= 0 (0: no augmented views), got {k!r}")
    if k == 0:
        return [td.split("train", mode=mode)]
    return [td.split("train", mode=mode, aug_view=v) for v in range(k)]


def train_val_inputs(
    ctx: Context, td: TaskData, train_filter=None, val_filter=None
) -> tuple[list[SingleViewInputs], SingleViewInputs, np.ndarray]:
    views = train_split_views(ctx, td)
    y_all = targets(views[0].records, ctx.task)  # every view holds the same records in the same order
    if train_filter is not None:
        keep = train_filter(views[0])
        inputs = [
            SingleViewInputs(v, y_all, [(i, list(range(int(v.num_clips[i])))) for i in keep]) for v in views
        ]
        y = y_all[keep]
    else:
        inputs, y = [SingleViewInputs(v, y_all) for v in views], y_all
    val = td.split("val")
    val_groups = None
    if val_filter is not None:
        val_groups = [(i, list(range(int(val.num_clips[i])))) for i in val_filter(val)]
    return inputs, SingleViewInputs(val, targets(val.records, ctx.task), val_groups), y


def train_task_probe(
    ctx: Context,
    train_views: Sequence[Dataset],
    val_inputs,
    train_target: np.ndarray,
    *,
    seed: int,
    kind: str | None = None,
    views: list[str] | None = None,
) -> tuple[ProbeBank, ProbeTask, TrainResult]:
    """Train every head of the grid in one pass (one training view per epoch, see ``train_loaders``);
    the head is chosen on validation inside."""
    multiview = kind in ("multiview", "late_fusion")
    ptask = probe_task(ctx.task, train_target)
    train = train_views[0].data  # the cached train entry (every augmented view has the same shape)
    n_tokens, dim = train.tokens.shape[2:]
    bank = build_probe_bank(
        bank_config(ctx.probe, ctx.task, kind, views or []), dim, ptask.out_dim, token_grid(ctx, n_tokens)
    )
    width = ctx.probe.get("width")
    if width is not None:
        bank.set_projection(*train_projection(ctx, train, int(width)))
    bs = int(ctx.probe.get("batch_size", 32))
    result = train_probe_bank(
        bank,
        train_loaders(train_views, bs, seed, multiview),
        loader(val_inputs, bs, False, seed, multiview),
        ptask,
        int(ctx.probe["epochs"]),
        ctx.cfg.get("device", "cpu"),
        ctx.progress,
        schedule=probe_schedule(ctx.probe),
        seed=seed,
        min_steps=int(ctx.probe.get("min_steps") or 0),
        val_passes=ctx.probe.get("val_passes"),
        precision=str(ctx.probe.get("precision", "32-true")),
    )
    result.probe["input"] = probe_input(ctx, train.tokens.shape)
    if ctx.probe.get("aug_views"):  # the setup table says so (echojepa/report/setup.py)
        result.probe["aug_views"] = int(ctx.probe["aug_views"])
    return bank, ptask, result


def probe_input(ctx: Context, tokens_shape: Sequence[int]) -> dict[str, Any]:
    """What the backbone was given and what the probe saw, for the record (the report's setup table):
    frames per clip, their size and step, clips per item, tokens per clip, the backbone's width and the
    precision its forward ran in."""
    spec = clip_spec(ctx.task, ctx.backbone)
    _, clips, tokens, dim = (int(v) for v in tokens_shape)  # [n, S, N, D]
    size = int(ctx.backbone.preprocess.img_size)
    return {
        "frames": int(spec.frames), "frame_step": spec.frame_step, "img_size": size,
        "clips": clips, "tokens_per_clip": tokens, "backbone_dim": dim,
        "feature_precision": ctx.feature_precision,
    }  # fmt: skip


def predict_items(
    bank: ProbeBank, ptask: ProbeTask, inputs, head: int, n_items: int, multiview: bool = False
) -> np.ndarray:
    """Predictions per item; several inputs of one item (all-clips mode) are averaged."""
    out = predict_bank(bank, loader(inputs, 64, False, 0, multiview), head=head, task=ptask)
    items = np.array([g[0] for g in inputs.groups]) if hasattr(inputs, "groups") else np.arange(len(out))
    if len(items) == n_items and (items == np.arange(n_items)).all():
        return out
    summed = np.zeros((n_items, *out.shape[1:]))
    np.add.at(summed, items, out)
    counts = np.bincount(items, minlength=n_items).reshape(-1, *([1] * (out.ndim - 1)))
    return summed / counts
