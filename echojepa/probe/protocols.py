"""The seed's evaluation protocols on frozen features: standard, sample efficiency, robustness and
adult-to-pediatric transfer (LVEF); the multi-view RVSP variants of the standard protocol live in
``echojepa.probe.multiview_protocol``.

Every protocol trains its probe heads on a training split (``echojepa.probe.training``), chooses ONE head
on the validation split, and only then touches the test split; the test split never feeds a choice. Each
evaluation becomes a results record plus a trivial-baseline record (``echojepa.probe.evaluation``).

Saved probes (``probe_checkpoint=``): every protocol that evaluates one probe per condition honours the
option (standard, multi-view, robustness, pediatric transfer) and evaluates the saved probe instead of
training one, after checking it was trained for this backbone, task, label, task kind, output size
(and classes) with a probe of the right kind; its records are named apart from training records.
sample_efficiency trains one probe per fraction and seed and refuses the option.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from echojepa.probe.checkpoint import ProbeCheckpointError
from echojepa.probe.context import Context
from echojepa.probe.errors import ProbeInputError
from echojepa.probe.evaluation import dataset_id, evaluate_probe, saved_or_trained_probe, saved_probe
from echojepa.probe.multiview_protocol import multiview_standard
from echojepa.probe.taskdata import SingleViewInputs, SplitData, TaskData, all_clip_groups, targets
from echojepa.probe.training import train_task_probe, train_val_inputs


def _test_inputs(
    ctx: Context, td: TaskData, split: str, degradation: str | None = None
) -> tuple[SplitData, SingleViewInputs]:
    all_clips = ctx.cfg["protocol"].get("test_time", "one_clip") == "all_clips"
    data = td.split(split, mode="all" if all_clips else "center", degradation=degradation)
    y = targets(data.records, ctx.task)
    segments = int((ctx.task.get("clip") or {}).get("segments") or 1)
    groups = all_clip_groups(data.num_clips, segments) if all_clips else None
    return data, SingleViewInputs(data, y, groups)


def standard(ctx: Context) -> None:
    if ctx.task.get("multiview"):
        return multiview_standard(ctx)
    td = ctx.data("internal")
    saved = saved_probe(ctx)
    bank, ptask, result, train_y, seed = saved_or_trained_probe(ctx, td, saved)
    conditions = ctx.cfg["protocol"].get("conditions", ["internal"])
    for condition in conditions:
        if condition != "internal" and condition not in ctx.task["datasets"]:
            continue
        source = td if condition == "internal" else ctx.data(condition)
        data, inputs = _test_inputs(ctx, source, "test")
        evaluate_probe(
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
            train_dataset=dataset_id(td),
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
            train_in, val_in, train_y = train_val_inputs(
                ctx, td, _patients_filter(chosen), _patients_filter(chosen_val)
            )
            if ctx.task["kind"] == "classification" and len(np.unique(train_y)) < 1:
                raise ValueError("no training labels after subsampling")
            bank, ptask, result = train_task_probe(ctx, train_in, val_in, train_y, seed=int(seed))
            test = test or _test_inputs(ctx, td, "test")  # read once a head is chosen
            evaluate_probe(
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
    bank, ptask, result, train_y, seed = saved_or_trained_probe(ctx, td, saved)
    for condition in ctx.cfg["protocol"]["conditions"]:
        data, inputs = _test_inputs(
            ctx, td, "test", degradation=None if condition == "original" else condition
        )
        evaluate_probe(
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
            train_dataset=dataset_id(td),
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
        plan = [(c, source) for c, source in plan if dataset_id(source) == trained_on][:1]
        if not plan:
            raise ProbeCheckpointError(
                f"{saved.path}: trained on {trained_on}, which is neither this task's adult "
                f"({dataset_id(adult)}) nor pediatric ({dataset_id(peds)}) dataset: refusing"
            )
    for condition, source in plan:
        bank, ptask, result, train_y, seed = saved_or_trained_probe(ctx, source, saved)
        data, inputs = _test_inputs(ctx, peds, "test")  # read once the head is chosen
        evaluate_probe(
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
            train_dataset=dataset_id(source),
            saved=saved,
        )


PROTOCOLS = {
    "standard": standard,
    "sample_efficiency": sample_efficiency,
    "robustness": robustness,
    "pediatric_transfer": pediatric_transfer,
}
