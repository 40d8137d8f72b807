"""The multi-view RVSP protocol: single view (A4C only), multi-view early fusion and late fusion (the
ablation), each trained on studies and evaluated on the test studies once its head is chosen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from echojepa.probe.checkpoint import check_probe_fits
from echojepa.probe.context import Context
from echojepa.probe.evaluation import dataset_id, record, saved_probe, trivial
from echojepa.probe.fit import predict_bank
from echojepa.probe.taskdata import ExamViews, MultiViewInputs, SplitData, loader, studies
from echojepa.probe.training import train_split_views, train_task_probe


def multiview_variants(mv: Mapping[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """condition -> (probe kind, views): A4C alone, early fusion of the task's views, late fusion."""
    return {
        "single_view": ("multiview", [mv["single_view"]]),
        "multi_view": ("multiview", list(mv["views"])),
        "late_fusion": ("late_fusion", list(mv["views"])),
    }


def variant_rows(ctx: Context, split: SplitData, views: list[str]) -> list[ExamViews]:
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
    variants = multiview_variants(mv)
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
    train_views = (
        [td.split("train", mode="all")] if saved is not None else train_split_views(ctx, td, mode="all")
    )
    for condition in (c for c in variants if c in wanted):
        kind, views = variants[condition]
        train_rows = variant_rows(ctx, train_views[0], views)
        train_y = np.array([st.target for st in train_rows])
        if saved is not None:
            bank, ptask, result = saved.bank, saved.task, saved.result
        else:
            val = td.split("val", mode="all")
            # every augmented view holds the same records in the same order: the same study rows apply
            train_in = [MultiViewInputs(v, train_rows, clips) for v in train_views]
            val_in = MultiViewInputs(val, variant_rows(ctx, val, views), clips)
            bank, ptask, result = train_task_probe(
                ctx, train_in, val_in, train_y, seed=seed, kind=kind, views=views
            )
        test = td.split("test", mode="all")  # only now: the head is chosen
        test_rows = variant_rows(ctx, test, views)
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
            train_dataset=dataset_id(td),
            probe_meta={"views": views},
            saved=saved,
            **common,
        )
        trivial(ctx, train_target=train_y, seed=seed, saved=saved, **common)
