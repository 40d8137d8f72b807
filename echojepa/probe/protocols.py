"""The seed's evaluation protocols on frozen features: standard, sample efficiency, robustness,
adult-to-pediatric transfer (LVEF) and single- vs multi-view RVSP.

Every protocol trains its probe heads on a training split, chooses ONE head on the validation split,
and only then touches the test split; the test split never feeds a choice. Each evaluation becomes a
results record (echojepa.probe.results) with bootstrap CIs over patients, plus a trivial-baseline record
(train mean / majority class) for the same condition so every table carries the floor.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from echojepa.probe.backbones import Backbone
from echojepa.probe.features import FeatureCache
from echojepa.probe.heads import (
    ProbeBank,
    ProbeTask,
    TrainResult,
    build_probe_bank,
    load_probe,
    predict,
    probe_schedule,
    save_probe,
    train_probe_bank,
)
from echojepa.probe.results import classification_report, regression_report, write_record
from echojepa.probe.taskdata import (
    MultiViewInputs,
    SingleViewInputs,
    SplitData,
    TaskData,
    all_clip_groups,
    loader,
    studies,
    targets,
)

log = logging.getLogger(__name__)


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


def _bank_cfg(probe: Mapping[str, Any], task: Mapping[str, Any], kind: str | None, views: list[str]) -> dict:
    cfg = dict(probe)
    if kind in ("multiview", "late_fusion"):
        mv = task["multiview"]
        head = dict(probe.get("head") or {})
        head.pop("num_queries", None) if kind == "late_fusion" else None
        head.update(
            num_views=len(views),
            clips_per_view=int(mv["clips"]),
            view_dropout=float(mv.get("view_dropout", 0.10)),
        )
        cfg.update(kind=kind, head=head)
    return cfg


def fit(
    ctx: Context,
    train_inputs,
    val_inputs,
    train_target: np.ndarray,
    *,
    seed: int,
    kind: str | None = None,
    views: list[str] | None = None,
) -> tuple[ProbeBank, ProbeTask, TrainResult]:
    """Train every head of the grid in one pass; the head is chosen on validation inside."""
    multiview = kind in ("multiview", "late_fusion")
    ptask = probe_task(ctx.task, train_target)
    bank = build_probe_bank(
        _bank_cfg(ctx.probe, ctx.task, kind, views or []), ctx.backbone.embed_dim, ptask.out_dim
    )
    bs = int(ctx.probe.get("batch_size", 32))
    result = train_probe_bank(
        bank,
        lambda epoch: loader(train_inputs, bs, True, seed * 1000 + epoch, multiview),
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
    out = predict(bank, loader(inputs, 64, False, 0, multiview), head=head, task=ptask)
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
    result: TrainResult | None,
    backbone: str | None = None,
    kind: str | None = None,
    bank: ProbeBank | None = None,
    ptask: ProbeTask | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    ckpt = None
    name = backbone or ctx.backbone.name
    if bank is not None and ptask is not None and result is not None:
        ckpt_path = ctx.store / "probes" / ctx.task["name"] / name / f"{protocol}-{condition}-seed{seed}.pt"
        save_probe(
            ckpt_path,
            bank,
            ptask,
            {
                "backbone": name,
                "backbone_identity": ctx.backbone.identity(),
                "task": ctx.task["name"],
                "protocol": protocol,
                "condition": condition,
                "chosen_head": result.best_head,
                "chosen": result.chosen,
                "preprocess": vars(ctx.backbone.preprocess)
                if hasattr(ctx.backbone.preprocess, "__dict__")
                else {},
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


def _train_val(
    ctx: Context, td: TaskData, train_filter=None
) -> tuple[SingleViewInputs, SingleViewInputs, np.ndarray]:
    train = td.split("train")
    if train_filter is not None:
        keep = train_filter(train)
        y_all = targets(train.records, ctx.task)
        inputs = SingleViewInputs(train, y_all, [(i, list(range(int(train.num_clips[i])))) for i in keep])
        y = y_all[keep]
    else:
        y = targets(train.records, ctx.task)
        inputs = SingleViewInputs(train, y)
    val = td.split("val")
    return inputs, SingleViewInputs(val, targets(val.records, ctx.task)), y


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
        bank=bank if save else None,
        ptask=ptask,
        extra=extra,
        **common,
    )
    trivial(ctx, train_target=train_target, seed=seed, **common)


# ----- protocols ------------------------------------------------------------------------------------------
def standard(ctx: Context) -> None:
    if ctx.task.get("multiview"):
        return multiview_standard(ctx)
    seed = int(ctx.cfg.get("seed", 0))
    td = ctx.data("internal")
    if ctx.cfg.get("probe_checkpoint"):
        bank, ptask, meta = load_probe(ctx.cfg["probe_checkpoint"])
        if meta.get("backbone_identity") != ctx.backbone.identity():
            raise ValueError(
                f"{ctx.cfg['probe_checkpoint']}: trained on another backbone "
                f"({meta.get('backbone')}); refusing to evaluate it on {ctx.backbone.name}"
            )
        train_y = targets(td.split("train").records, ctx.task)
        # the head chosen on validation when the probe was trained, carried by its checkpoint
        result = SimpleNamespace(
            best_head=int(meta["chosen_head"]),
            chosen={**meta["chosen"], "loaded_from": ctx.cfg["probe_checkpoint"]},
        )
    else:
        train_in, val_in, train_y = _train_val(ctx, td)
        bank, ptask, result = fit(ctx, train_in, val_in, train_y, seed=seed)
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
            save=condition == "internal" and not ctx.cfg.get("probe_checkpoint"),
        )


def sample_efficiency(ctx: Context) -> None:
    p = ctx.cfg["protocol"]
    td = ctx.data("internal")
    train = td.split("train")
    patients = sorted({r.patient for r in train.records})
    data, inputs = _test_inputs(ctx, td, "test")
    for fraction in p["fractions"]:
        for seed in p["seeds"] if fraction < 1 else p["seeds"][:1]:
            k = max(int(p.get("min_patients", 1)), int(round(fraction * len(patients))))
            chosen = set(
                np.random.default_rng([int(seed), 7]).choice(
                    patients, size=min(k, len(patients)), replace=False
                )
            )

            def keep(split: SplitData, chosen=chosen) -> list[int]:
                return [i for i, r in enumerate(split.records) if r.patient in chosen]

            train_in, val_in, train_y = _train_val(ctx, td, keep)
            if ctx.task["kind"] == "classification" and len(np.unique(train_y)) < 1:
                raise ValueError("no training labels after subsampling")
            bank, ptask, result = fit(ctx, train_in, val_in, train_y, seed=int(seed))
            _evaluate(
                ctx,
                bank,
                ptask,
                result,
                data,
                inputs,
                protocol="sample_efficiency",
                condition=f"fraction={fraction:g}",
                dataset=td.cfg["root"],
                seed=int(seed),
                train_target=train_y,
                save=False,
                extra={"fraction": fraction, "train_patients": len(chosen), "train_items": len(train_y)},
            )


def robustness(ctx: Context) -> None:
    seed = int(ctx.cfg.get("seed", 0))
    td = ctx.data("internal")
    train_in, val_in, train_y = _train_val(ctx, td)
    bank, ptask, result = fit(ctx, train_in, val_in, train_y, seed=seed)
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
        )


def pediatric_transfer(ctx: Context) -> None:
    seed = int(ctx.cfg.get("seed", 0))
    adult, peds = ctx.data("internal"), ctx.data("pediatric")
    data, inputs = _test_inputs(ctx, peds, "test")
    conditions = ctx.cfg["protocol"]["conditions"]
    # zero-shot: the adult probe on pediatric test; fine-tuned: a probe trained on pediatric folds
    for condition, source in (("zero_shot", adult), ("fine_tuned", peds)):
        if condition not in conditions:
            continue
        train_in, val_in, train_y = _train_val(ctx, source)
        bank, ptask, result = fit(ctx, train_in, val_in, train_y, seed=seed)
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
        )


def multiview_standard(ctx: Context) -> None:
    """RVSP from studies: single view (A4C only), multi-view early fusion, and late fusion (ablation)."""
    seed = int(ctx.cfg.get("seed", 0))
    mv = ctx.task["multiview"]
    td = ctx.data("internal")
    splits = {s: td.split(s, mode="all") for s in ("train", "val", "test")}
    variants = [
        ("single_view", "multiview", [mv["single_view"]]),
        ("multi_view", "multiview", list(mv["views"])),
        ("late_fusion", "late_fusion", list(mv["views"])),
    ]
    known = [v[0] for v in variants]
    wanted = ctx.cfg["protocol"].get("multiview_conditions") or known
    if unknown := set(wanted) - set(known):
        raise ValueError(f"protocol.multiview_conditions: unknown {sorted(unknown)}; known: {known}")
    for condition, kind, views in (v for v in variants if v[0] in wanted):
        rows = {}
        for s, data in splits.items():
            rows[s] = [
                st
                for st in studies(data, list(mv["views"]), ctx.task["label"])
                if any(st.slots[list(mv["views"]).index(v)] is not None for v in views)
            ]
            for st in rows[s]:  # keep only this variant's views
                st.slots = [st.slots[list(mv["views"]).index(v)] for v in views]
        inputs = {s: MultiViewInputs(splits[s], rows[s], int(mv["clips"])) for s in splits}
        train_y = np.array([st.target for st in rows["train"]])
        bank, ptask, result = fit(
            ctx, inputs["train"], inputs["val"], train_y, seed=seed, kind=kind, views=views
        )
        test_rows = rows["test"]
        y = np.array([st.target for st in test_rows])
        pred = predict(bank, loader(inputs["test"], 64, False, 0, True), head=result.best_head, task=ptask)
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
                "clips_per_view": int(mv["clips"]),
                "studies_missing_a_view": sum(any(s is None for s in st.slots) for st in test_rows),
            },
            **common,
        )
        trivial(ctx, train_target=train_y, seed=seed, **common)


PROTOCOLS = {
    "standard": standard,
    "sample_efficiency": sample_efficiency,
    "robustness": robustness,
    "pediatric_transfer": pediatric_transfer,
}
