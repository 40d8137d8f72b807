"""The seed's evaluation protocols on frozen features: standard, sample efficiency, robustness,
adult-to-pediatric transfer (LVEF) and single- vs multi-view RVSP.

Every protocol trains its probe heads on a training split, chooses ONE head on the validation split,
and only then touches the test split; the test split never feeds a choice. Each evaluation becomes a
results record (echojepa.probe.results) with bootstrap CIs over patients, plus a trivial-baseline record
(train mean / majority class) for the same condition so every table carries the floor.

Saved probes (``probe_checkpoint=``): every protocol that evaluates one probe per condition honours the
option (standard, multi-view, robustness, pediatric transfer) and evaluates the saved probe instead of
training one, after checking it was trained for this backbone, task, label, task kind, output size
(and classes) with a probe of the right kind; its records are named apart from training records.
sample_efficiency trains one probe per fraction and seed and refuses the option.

Augmented training views (``probe.aug_views`` = k > 0): the train split is cached k times with the
training transform, and epoch e trains on view ``aug_view_for_epoch(e, k, seed)``.

One probe for every backbone: heads are built at ``probe.width`` whatever the backbone's token width, and
take its tokens through a fixed projection fit on the cached TRAIN tokens (``echojepa.probe.project``;
fit once per train cache entry and run, labels never read); attentive heads get the backbone's token grid
for their fixed space-time position code. ``probe.task_depth`` sets the attentive depth per task (chosen
on validation, see conf/probe/).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from echojepa.probe.backbones import Backbone
from echojepa.probe.bank import ATTENTIVE_KINDS, ProbeBank, build_probe_bank
from echojepa.probe.checkpoint import ProbeCheckpointError, check_probe_fits, load_probe, save_probe
from echojepa.probe.errors import ProbeInputError
from echojepa.probe.features import FeatureCache, aug_view_for_epoch
from echojepa.probe.fit import TrainResult, predict_bank, probe_schedule, train_probe_bank
from echojepa.probe.project import projection_for
from echojepa.probe.results import classification_report, regression_report, write_record
from echojepa.probe.task import ProbeTask
from echojepa.probe.taskdata import (
    MultiViewInputs,
    SingleViewInputs,
    SplitData,
    Study,
    TaskData,
    all_clip_groups,
    clip_spec,
    loader,
    studies,
    targets,
)

log = logging.getLogger(__name__)

SINGLE_VIEW_PROBES = frozenset({"attentive", "linear", "mlp"})


@dataclass
class Context:
    """Everything a protocol needs; built by the runner from the config."""

    cfg: dict[str, Any]
    backbone: Backbone
    backbone_kind: str  # the report's row category: jepa / mae / random / pixel_stats / ...
    cache: FeatureCache
    store: Path
    progress: bool = True
    written: list[Path] = field(default_factory=list)
    # fixed token projections fit in this run, by (train cache entry key, width): fit once per entry
    projections: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def task(self) -> dict[str, Any]:
        return self.cfg["task"]

    @property
    def probe(self) -> dict[str, Any]:
        return self.cfg["probe"]

    def data(self, which: str) -> TaskData:
        ds = self.task["datasets"].get(which)
        if ds is None:
            raise ValueError(f"task {self.task['name']} has no {which!r} dataset")
        return TaskData(
            ds,
            self.task,
            self.backbone,
            self.cache,
            self.cfg.get("batch_size", 16),
            self.cfg.get("device", "cpu"),
            self.cfg.get("num_workers", 0),
            self.cfg.get("feature_seed", 0),
            self.progress,
        )


# ----- training and evaluation on cached features -------------------------------------------------------
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
    (``probe.task_depth``), and for multi-view kinds the task's views, clips and view dropout."""
    cfg = dict(probe)
    head = dict(probe.get("head") or {})
    depth = (probe.get("task_depth") or {}).get(task["name"])
    if depth is not None and (kind or probe["kind"]) in ATTENTIVE_KINDS:
        head["depth"] = int(depth)  # the depth chosen on validation for this task (conf/probe/)
    if kind in ("multiview", "late_fusion"):
        mv = task["multiview"]
        head.pop("num_queries", None) if kind == "late_fusion" else None
        head.update(
            num_views=len(views),
            clips_per_view=int(mv["clips"]),
            view_dropout=float(mv.get("view_dropout", 0.10)),
        )
        cfg.update(kind=kind)
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


def fit(
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
    )
    return bank, ptask, result


def _predict_items(
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


def _report(ctx: Context, pred: np.ndarray, target: np.ndarray, patients: list[str]) -> dict:
    b = ctx.cfg.get("bootstrap", {})
    kw = dict(
        n_resamples=int(b.get("n_resamples", 1000)),
        alpha=float(b.get("alpha", 0.05)),
        seed=int(ctx.cfg.get("seed", 0)),
    )
    if ctx.task["kind"] == "regression":
        return regression_report(pred, target, patients, ctx.task.get("binary"), **kw)
    return classification_report(pred, target, patients, **kw)


def _prediction_columns(
    ctx: Context, ids: list[str], patients: list[str], target: np.ndarray, pred: np.ndarray
) -> dict[str, list]:
    cols: dict[str, list] = {"id": ids, "patient": patients}
    if ctx.task["kind"] == "regression":
        cols |= {"target": [float(t) for t in target], "prediction": [float(p) for p in pred]}
        return cols
    classes = list(ctx.task["classes"])
    cols |= {
        "target": [classes[int(t)] for t in target],
        "prediction": [classes[int(k)] for k in pred.argmax(1)],
    }
    for c, name in enumerate(classes):
        cols[f"prob_{name}"] = [float(p) for p in pred[:, c]]
    return cols


@dataclass
class SavedProbe:
    """A probe loaded from ``probe_checkpoint`` (see ``saved_probe``)."""

    path: str
    bank: ProbeBank
    task: ProbeTask
    meta: dict[str, Any]

    @property
    def result(self) -> SimpleNamespace:
        # the head chosen on validation when the probe was trained, carried by its checkpoint
        chosen = {**self.meta["chosen"], "loaded_from": self.path}
        return SimpleNamespace(best_head=int(self.meta["chosen_head"]), chosen=chosen)

    @property
    def seed(self) -> int:  # the seed the probe was trained with: its records carry it
        return int(self.meta["seed"])


def _dataset_id(td: TaskData) -> str:
    """How a probe's training dataset is named in its checkpoint (resolved root)."""
    return str(Path(td.cfg["root"]).resolve())


def saved_probe(
    ctx: Context, probe_kinds: frozenset[str] = SINGLE_VIEW_PROBES, **expect: Any
) -> SavedProbe | None:
    """The probe named by ``probe_checkpoint`` (None when unset), refused (ProbeCheckpointError, one
    line) when missing or unreadable, or unless it was trained on this backbone for this task, label,
    task kind and output size (and classes), with a probe of one of ``probe_kinds``; ``expect`` adds
    checks (see ``check_probe_fits``)."""
    path = ctx.cfg.get("probe_checkpoint")
    if not path:
        return None
    bank, ptask, meta = load_probe(path)
    task = ctx.task
    need: dict[str, Any] = {
        "backbone_identity": ctx.backbone.identity(),
        "task": task["name"],
        "label": task["label"],
        "task_kind": task["kind"],
        "out_dim": 1 if task["kind"] == "regression" else len(task["classes"]),
        "probe_kind": probe_kinds,
    }
    if task["kind"] == "classification":
        need["class_names"] = list(task["classes"])
    check_probe_fits(path, bank, ptask, meta, {**need, **expect})
    return SavedProbe(str(path), bank, ptask, meta)


def record(
    ctx: Context,
    *,
    protocol: str,
    condition: str,
    dataset: str,
    seed: int,
    pred: np.ndarray,
    target: np.ndarray,
    patients: list[str],
    ids: list[str],
    result: TrainResult | SimpleNamespace | None,
    backbone: str | None = None,
    kind: str | None = None,
    bank: ProbeBank | None = None,
    ptask: ProbeTask | None = None,
    extra: Mapping[str, Any] | None = None,
    train_dataset: str | None = None,
    probe_meta: Mapping[str, Any] | None = None,
    saved: SavedProbe | None = None,
) -> Path:
    """Write one results record; with ``bank`` (and no ``saved`` probe) also save the probe checkpoint,
    its meta naming what reuse checks: backbone, task, label, seed, training dataset, chosen head
    (plus ``probe_meta``). Records of a ``saved`` probe point at its checkpoint and are named apart."""
    ckpt = None
    name = backbone or ctx.backbone.name
    if saved is not None:
        ckpt = saved.path if bank is not None else None  # a trivial floor has no probe
        extra = {**(extra or {}), "probe_trained_on": saved.meta["train_dataset"]}
    elif bank is not None and ptask is not None and result is not None:
        ckpt_path = ctx.store / "probes" / ctx.task["name"] / name / f"{protocol}-{condition}-seed{seed}.pt"
        save_probe(
            ckpt_path,
            bank,
            ptask,
            {
                "backbone": name,
                "backbone_identity": ctx.backbone.identity(),
                "task": ctx.task["name"],
                "label": ctx.task["label"],
                "protocol": protocol,
                "condition": condition,
                "seed": int(seed),
                "train_dataset": train_dataset,
                "chosen_head": result.best_head,
                "chosen": result.chosen,
                "preprocess": vars(ctx.backbone.preprocess)
                if hasattr(ctx.backbone.preprocess, "__dict__")
                else {},
                **(probe_meta or {}),
            },
        )
        ckpt = str(ckpt_path)
    path = write_record(
        ctx.store,
        backbone=name,
        backbone_kind=kind or ctx.backbone_kind,
        task=ctx.task["name"],
        protocol=protocol,
        condition=condition,
        dataset=dataset,
        seed=seed,
        metrics=_report(ctx, pred, target, patients),
        chosen=result.chosen if result else None,
        config={"task": ctx.task, "probe": ctx.probe, "backbone": ctx.cfg.get("backbone")},
        predictions=_prediction_columns(ctx, ids, patients, target, pred),
        probe_checkpoint=ckpt,
        extra=extra,
        n=len(target),
        evaluation_of=saved.path if saved is not None else None,
    )
    ctx.written.append(path)
    log.info("wrote %s", path)
    return path


def trivial(
    ctx: Context,
    *,
    protocol: str,
    condition: str,
    dataset: str,
    train_target: np.ndarray,
    target: np.ndarray,
    patients: list[str],
    ids: list[str],
    seed: int = 0,
    saved: SavedProbe | None = None,
) -> Path:
    """The floor every table carries: train mean (regression) or majority class (classification)."""
    if ctx.task["kind"] == "regression":
        pred = np.full(len(target), float(np.mean(train_target)))
    else:
        counts = np.bincount(train_target.astype(int), minlength=len(ctx.task["classes"]))
        pred = np.zeros((len(target), len(counts)))
        pred[:, int(np.argmax(counts))] = 1.0
    return record(
        ctx,
        protocol=protocol,
        condition=condition,
        dataset=dataset,
        seed=seed,
        pred=pred,
        target=target,
        patients=patients,
        ids=ids,
        result=None,
        backbone="trivial",
        kind="trivial",
        saved=saved,  # written by an evaluation run: named apart like its probe's record
    )


# ----- single-view helpers --------------------------------------------------------------------------------
def _ids(data: SplitData) -> list[str]:
    return [Path(r.path).name for r in data.records]


def _patients(data: SplitData) -> list[str]:
    return [r.patient for r in data.records]


def _test_inputs(
    ctx: Context, td: TaskData, split: str, degradation: str | None = None
) -> tuple[SplitData, SingleViewInputs]:
    all_clips = ctx.cfg["protocol"].get("test_time", "one_clip") == "all_clips"
    data = td.split(split, mode="all" if all_clips else "center", degradation=degradation)
    y = targets(data.records, ctx.task)
    segments = int((ctx.task.get("clip") or {}).get("segments") or 1)
    groups = all_clip_groups(data.num_clips, segments) if all_clips else None
    return data, SingleViewInputs(data, y, groups)


def _train_views(ctx: Context, td: TaskData, mode: str = "center") -> list[SplitData]:
    """The train split as the probe sees it: one deterministic view, or with ``probe.aug_views`` = k > 0,
    k cached augmented views (training transform; view v draws its randomness as dataset epoch v)."""
    k = ctx.probe.get("aug_views") or 0
    if not isinstance(k, int) or k < 0:
        raise ProbeInputError(f"probe.aug_views must be an integer >= 0 (0: no augmented views), got {k!r}")
    if k == 0:
        return [td.split("train", mode=mode)]
    return [td.split("train", mode=mode, aug_view=v) for v in range(k)]


def _train_val(
    ctx: Context, td: TaskData, train_filter=None, val_filter=None
) -> tuple[list[SingleViewInputs], SingleViewInputs, np.ndarray]:
    views = _train_views(ctx, td)
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


def _train_targets(ctx: Context, td: TaskData) -> np.ndarray:
    """Targets of the usable train records (the trivial floor next to a saved probe: no features needed)."""
    return targets(td.usable("train")[0], ctx.task)


def _evaluate(
    ctx: Context,
    bank,
    ptask,
    result,
    data: SplitData,
    inputs: SingleViewInputs,
    *,
    protocol: str,
    condition: str,
    dataset: str,
    seed: int,
    train_target: np.ndarray,
    save: bool = True,
    extra: Mapping[str, Any] | None = None,
    train_dataset: str | None = None,
    saved: SavedProbe | None = None,
) -> None:
    y = targets(data.records, ctx.task)
    pred = _predict_items(bank, ptask, inputs, result.best_head, len(y))
    common = dict(
        protocol=protocol,
        condition=condition,
        dataset=dataset,
        target=y,
        patients=_patients(data),
        ids=_ids(data),
    )
    record(
        ctx,
        seed=seed,
        pred=pred,
        result=result,
        bank=bank if save or saved is not None else None,
        ptask=ptask,
        extra=extra,
        train_dataset=train_dataset,
        saved=saved,
        **common,
    )
    trivial(ctx, train_target=train_target, seed=seed, saved=saved, **common)


def _probe_or_fit(ctx: Context, td: TaskData, saved: SavedProbe | None):
    """(bank, task, result, train targets, seed): the saved probe, or one trained on ``td`` now."""
    if saved is not None:
        return saved.bank, saved.task, saved.result, _train_targets(ctx, td), saved.seed
    seed = int(ctx.cfg.get("seed", 0))
    train_in, val_in, train_y = _train_val(ctx, td)
    bank, ptask, result = fit(ctx, train_in, val_in, train_y, seed=seed)
    return bank, ptask, result, train_y, seed


# ----- protocols ------------------------------------------------------------------------------------------
def standard(ctx: Context) -> None:
    if ctx.task.get("multiview"):
        return multiview_standard(ctx)
    td = ctx.data("internal")
    saved = saved_probe(ctx)
    bank, ptask, result, train_y, seed = _probe_or_fit(ctx, td, saved)
    conditions = ctx.cfg["protocol"].get("conditions", ["internal"])
    for condition in conditions:
        if condition != "internal" and condition not in ctx.task["datasets"]:
            continue
        source = td if condition == "internal" else ctx.data(condition)
        data, inputs = _test_inputs(ctx, source, "test")
        _evaluate(
            ctx,
            bank,
            ptask,
            result,
            data,
            inputs,
            protocol="standard",
            condition=condition,
            dataset=source.cfg["root"],
            seed=seed,
            train_target=train_y,
            save=condition == "internal",
            train_dataset=_dataset_id(td),
            saved=saved,
        )


def subsample_patients(
    patients: Sequence[str], fraction: float, protocol: Mapping[str, Any], seed: list[int]
) -> set[str]:
    """``fraction`` of ``patients`` (at least ``protocol.min_patients``, at most all), drawn with ``seed``."""
    k = max(int(protocol.get("min_patients", 1)), int(round(fraction * len(patients))))
    return set(np.random.default_rng(seed).choice(list(patients), size=min(k, len(patients)), replace=False))


def _patients_filter(chosen: set[str]) -> Callable[[SplitData], list[int]]:
    def keep(split: SplitData) -> list[int]:
        return [i for i, r in enumerate(split.records) if r.patient in chosen]

    return keep


def sample_efficiency(ctx: Context) -> None:
    if ctx.cfg.get("probe_checkpoint"):
        raise ProbeInputError(
            f"probe_checkpoint={ctx.cfg['probe_checkpoint']}: the sample_efficiency protocol trains one "
            "probe per training fraction and seed, so one saved probe cannot stand in for it "
            "(evaluate a saved probe with protocol=standard)"
        )
    p = ctx.cfg["protocol"]
    td = ctx.data("internal")
    train_patients = sorted({r.patient for r in td.usable("train")[0]})
    val_patients = sorted({r.patient for r in td.usable("val")[0]})
    test: tuple[SplitData, SingleViewInputs] | None = None
    for fraction in p["fractions"]:
        for seed in p["seeds"] if fraction < 1 else p["seeds"][:1]:
            # training AND validation patients in the same proportion: choosing the head on the full
            # validation split would use more labels than the probe was trained with
            chosen = subsample_patients(train_patients, fraction, p, [int(seed), 7])
            chosen_val = subsample_patients(val_patients, fraction, p, [int(seed), 11])
            train_in, val_in, train_y = _train_val(
                ctx, td, _patients_filter(chosen), _patients_filter(chosen_val)
            )
            if ctx.task["kind"] == "classification" and len(np.unique(train_y)) < 1:
                raise ValueError("no training labels after subsampling")
            bank, ptask, result = fit(ctx, train_in, val_in, train_y, seed=int(seed))
            test = test or _test_inputs(ctx, td, "test")  # read once a head is chosen
            _evaluate(
                ctx,
                bank,
                ptask,
                result,
                *test,
                protocol="sample_efficiency",
                condition=f"fraction={fraction:g}",
                dataset=td.cfg["root"],
                seed=int(seed),
                train_target=train_y,
                save=False,
                extra={
                    "fraction": fraction,
                    "train_patients": len(chosen),
                    "train_items": len(train_y),
                    "val_patients": len(chosen_val),
                    "val_items": len(val_in),
                },  # fmt: skip
            )


def robustness(ctx: Context) -> None:
    td = ctx.data("internal")
    saved = saved_probe(ctx)
    bank, ptask, result, train_y, seed = _probe_or_fit(ctx, td, saved)
    for condition in ctx.cfg["protocol"]["conditions"]:
        data, inputs = _test_inputs(
            ctx, td, "test", degradation=None if condition == "original" else condition
        )
        _evaluate(
            ctx,
            bank,
            ptask,
            result,
            data,
            inputs,
            protocol="robustness",
            condition=condition,
            dataset=td.cfg["root"],
            seed=seed,
            train_target=train_y,
            save=condition == "original",
            train_dataset=_dataset_id(td),
            saved=saved,
        )


def pediatric_transfer(ctx: Context) -> None:
    adult, peds = ctx.data("internal"), ctx.data("pediatric")
    conditions = ctx.cfg["protocol"]["conditions"]
    # zero-shot: the adult probe on pediatric test; fine-tuned: a probe trained on pediatric folds
    plan = [("zero_shot", adult), ("fine_tuned", peds)]
    saved = saved_probe(ctx)
    if saved is None:
        plan = [(c, source) for c, source in plan if c in conditions]
    else:  # the condition follows from the data the saved probe was trained on
        trained_on = saved.meta["train_dataset"]
        plan = [(c, source) for c, source in plan if _dataset_id(source) == trained_on][:1]
        if not plan:
            raise ProbeCheckpointError(
                f"{saved.path}: trained on {trained_on}, which is neither this task's adult "
                f"({_dataset_id(adult)}) nor pediatric ({_dataset_id(peds)}) dataset: refusing"
            )
    for condition, source in plan:
        bank, ptask, result, train_y, seed = _probe_or_fit(ctx, source, saved)
        data, inputs = _test_inputs(ctx, peds, "test")  # read once the head is chosen
        _evaluate(
            ctx,
            bank,
            ptask,
            result,
            data,
            inputs,
            protocol="pediatric_transfer",
            condition=condition,
            dataset=peds.cfg["root"],
            seed=seed,
            train_target=train_y,
            save=condition == "fine_tuned",
            train_dataset=_dataset_id(source),
            saved=saved,
        )


def _multiview_variants(mv: Mapping[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """condition -> (probe kind, views): A4C alone, early fusion of the task's views, late fusion."""
    return {
        "single_view": ("multiview", [mv["single_view"]]),
        "multi_view": ("multiview", list(mv["views"])),
        "late_fusion": ("late_fusion", list(mv["views"])),
    }


def _variant_rows(ctx: Context, split: SplitData, views: list[str]) -> list[Study]:
    """The studies of ``split`` with at least one of ``views``, their slots cut to those views."""
    every = list(ctx.task["multiview"]["views"])
    rows = [
        st
        for st in studies(split, every, ctx.task["label"])
        if any(st.slots[every.index(v)] is not None for v in views)
    ]
    for st in rows:  # keep only this variant's views
        st.slots = [st.slots[every.index(v)] for v in views]
    return rows


def multiview_standard(ctx: Context) -> None:
    """RVSP from studies: single view (A4C only), multi-view early fusion, and late fusion (ablation).
    With ``probe_checkpoint``: only the variant the saved probe was trained as (its checkpoint's
    condition), checked against that variant's probe kind, views and clips per view. The test split is
    read only once the variant's head is chosen."""
    mv = ctx.task["multiview"]
    clips = int(mv["clips"])
    td = ctx.data("internal")
    variants = _multiview_variants(mv)
    wanted = ctx.cfg["protocol"].get("multiview_conditions") or list(variants)
    if unknown := set(wanted) - set(variants):
        raise ValueError(f"protocol.multiview_conditions: unknown {sorted(unknown)}; known: {list(variants)}")
    saved = saved_probe(
        ctx, frozenset(k for k, _ in variants.values()), condition=frozenset(variants), clips_per_view=clips
    )
    if saved is not None:  # only the variant it was trained as, with that variant's kind and views
        kind, views = variants[saved.meta["condition"]]
        check_probe_fits(saved.path, saved.bank, saved.task, saved.meta, {"probe_kind": kind, "views": views})
        wanted = [saved.meta["condition"]]
    seed = saved.seed if saved is not None else int(ctx.cfg.get("seed", 0))
    train_views = [td.split("train", mode="all")] if saved is not None else _train_views(ctx, td, mode="all")
    for condition in (c for c in variants if c in wanted):
        kind, views = variants[condition]
        train_rows = _variant_rows(ctx, train_views[0], views)
        train_y = np.array([st.target for st in train_rows])
        if saved is not None:
            bank, ptask, result = saved.bank, saved.task, saved.result
        else:
            val = td.split("val", mode="all")
            # every augmented view holds the same records in the same order: the same study rows apply
            train_in = [MultiViewInputs(v, train_rows, clips) for v in train_views]
            val_in = MultiViewInputs(val, _variant_rows(ctx, val, views), clips)
            bank, ptask, result = fit(ctx, train_in, val_in, train_y, seed=seed, kind=kind, views=views)
        test = td.split("test", mode="all")  # only now: the head is chosen
        test_rows = _variant_rows(ctx, test, views)
        y = np.array([st.target for st in test_rows])
        test_in = MultiViewInputs(test, test_rows, clips)
        pred = predict_bank(bank, loader(test_in, 64, False, 0, True), head=result.best_head, task=ptask)
        common = dict(
            protocol="standard",
            condition=condition,
            dataset=td.cfg["root"],
            target=y,
            patients=[st.patient for st in test_rows],
            ids=[st.study for st in test_rows],
        )
        record(
            ctx,
            seed=seed,
            pred=pred,
            result=result,
            bank=bank,
            ptask=ptask,
            extra={
                "views": views,
                "clips_per_view": clips,
                "studies_missing_a_view": sum(any(s is None for s in st.slots) for st in test_rows),
            },
            train_dataset=_dataset_id(td),
            probe_meta={"views": views},
            saved=saved,
            **common,
        )
        trivial(ctx, train_target=train_y, seed=seed, saved=saved, **common)


# ----- choosing settings on validation only ---------------------------------------------------------------
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
    }


def validation_scores(ctx: Context) -> list[dict[str, Any]]:
    """Train the task's probe(s) on the train split and score them on the validation split ONLY: the
    numbers settings (depth, step floor, epochs, world size) are chosen from. The test split is never
    read, not even extracted. One summary per condition (``internal``, or each multi-view variant)."""
    td = ctx.data("internal")
    seed = int(ctx.cfg.get("seed", 0))
    if not ctx.task.get("multiview"):
        train_in, val_in, train_y = _train_val(ctx, td)
        _, ptask, result = fit(ctx, train_in, val_in, train_y, seed=seed)
        return [_val_summary("internal", ptask, result, train_y, val_in.target)]
    mv = ctx.task["multiview"]
    clips = int(mv["clips"])
    variants = _multiview_variants(mv)
    wanted = ctx.cfg["protocol"].get("multiview_conditions") or list(variants)
    train_views, val = _train_views(ctx, td, mode="all"), td.split("val", mode="all")
    out = []
    for condition in (c for c in variants if c in wanted):
        kind, views = variants[condition]
        train_rows, val_rows = _variant_rows(ctx, train_views[0], views), _variant_rows(ctx, val, views)
        train_y, val_y = (np.array([st.target for st in rows]) for rows in (train_rows, val_rows))
        train_in = [MultiViewInputs(v, train_rows, clips) for v in train_views]
        _, ptask, result = fit(
            ctx, train_in, MultiViewInputs(val, val_rows, clips), train_y, seed=seed, kind=kind, views=views
        )
        out.append(_val_summary(condition, ptask, result, train_y, val_y))
    return out


PROTOCOLS = {
    "standard": standard,
    "sample_efficiency": sample_efficiency,
    "robustness": robustness,
    "pediatric_transfer": pediatric_transfer,
}
