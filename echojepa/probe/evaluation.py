"""One evaluation written down: the results record (with its probe checkpoint) and the trivial floor next
to it, and saved probes evaluated in place of training one.

Every evaluation becomes a results record (echojepa.probe.results) with bootstrap CIs over patients, plus
a trivial-baseline record (train mean / majority class) for the same condition so every table carries the
floor.

Saved probes (``probe_checkpoint=``): ``saved_probe`` loads one and checks it was trained for this
backbone, task, label, task kind, output size (and classes) with a probe of the right kind; its records
are named apart from training records.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from echojepa.probe.bank import ProbeBank
from echojepa.probe.checkpoint import check_probe_fits, load_probe, save_probe
from echojepa.probe.context import Context
from echojepa.probe.fit import TrainResult
from echojepa.probe.results import classification_report, regression_report, write_record
from echojepa.probe.task import ProbeTask
from echojepa.probe.taskdata import SingleViewInputs, SplitData, TaskData, targets
from echojepa.probe.training import predict_items, train_task_probe, train_val_inputs

log = logging.getLogger(__name__)


SINGLE_VIEW_PROBES = frozenset({"attentive", "linear", "mlp"})


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


def dataset_id(td: TaskData) -> str:
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


def probe_checkpoint_path(
    store: Path, task: str, backbone: str, protocol: str, condition: str, seed: int
) -> Path:
    """Where an evaluation run saves its trained probe: <store>/probes/<task>/<backbone>/..."""
    return Path(store) / "probes" / task / backbone / f"{protocol}-{condition}-seed{int(seed)}.pt"


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
        ckpt_path = probe_checkpoint_path(ctx.store, ctx.task["name"], name, protocol, condition, seed)
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


def _ids(data: SplitData) -> list[str]:
    return [Path(r.path).name for r in data.records]


def _patients(data: SplitData) -> list[str]:
    return [r.patient for r in data.records]


def _train_targets(ctx: Context, td: TaskData) -> np.ndarray:
    """Targets of the usable train records (the trivial floor next to a saved probe: no features needed)."""
    return targets(td.usable("train")[0], ctx.task)


def evaluate_probe(
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
    pred = predict_items(bank, ptask, inputs, result.best_head, len(y))
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


def saved_or_trained_probe(ctx: Context, td: TaskData, saved: SavedProbe | None):
    """(bank, task, result, train targets, seed): the saved probe, or one trained on ``td`` now."""
    if saved is not None:
        return saved.bank, saved.task, saved.result, _train_targets(ctx, td), saved.seed
    seed = int(ctx.cfg.get("seed", 0))
    train_in, val_in, train_y = train_val_inputs(ctx, td)
    bank, ptask, result = train_task_probe(ctx, train_in, val_in, train_y, seed=seed)
    return bank, ptask, result, train_y, seed
