"""The online probe callback for a pretraining config (build_online_probe).

At build time it reads every task's index and draws a fixed, seeded, labelled subset of the TRAIN split
of each probe dataset and a subset of its VAL split (never test); at fit start the callback decodes
them, reading the pretraining data's decoded-video cache when `data.cache` is on (the same frames the
encoder trains on) and keeping the decoded subsets beside it, so a second run on the same world decodes
nothing (echojepa.data.labelled_subset.load_clips).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from echojepa.data.labelled_subset import LabelledClips
from echojepa.pretrain.online_probe.callback import OnlineProbe, OnlineTask
from echojepa.pretrain.online_probe.config import OnlineProbeConfig, OnlineProbeInputError, TaskConfig


def build_online_probe(
    cfg: Mapping[str, Any], run_dir: str | Path, from_scratch: bool = False
) -> OnlineProbe | None:
    """The callback for a pretraining config (None when `online_probe` is absent or disabled).
    `from_scratch`: the run starts from its own random init (no imported weights), so the random-init
    reference is its step-0 score.

    Reads every task's index and draws its subsets now, so a missing root, an empty split or an unknown
    key is refused before training starts (OnlineProbeInputError, one line); the clips themselves are
    decoded at fit start. Clips are cut like the pretraining data (`data.clip`, `model.img_size`) and
    normalised with `data.normalization` (ImageNet statistics when absent, as the DataModule does).
    """
    raw = cfg.get("online_probe")
    if not raw or not raw.get("enabled", False):
        return None
    pcfg = OnlineProbeConfig.from_dict(raw)
    objective = cfg["objective"]["name"]
    if pcfg.encoder == "target" and objective != "jepa":
        raise OnlineProbeInputError(
            f"online_probe.encoder: {objective} has no target encoder; use encoder=context (or auto)"
        )
    from echojepa.data.clips import ClipSpec
    from echojepa.data.datamodules import IMAGENET_MEAN, IMAGENET_STD
    from echojepa.data.datasets import DatasetError
    from echojepa.data.labelled_subset import label_tensor, load_clips, record_label, select
    from echojepa.pretrain.data import build_clip_cache

    data = cfg["data"]
    clip = data["clip"]
    spec = ClipSpec(
        frames=clip["frames"], frame_step=clip.get("frame_step"), target_fps=clip.get("target_fps")
    )
    size = int(cfg["model"]["img_size"])
    t0 = time.perf_counter()
    picked: dict[str, tuple[TaskConfig, dict]] = {}
    for name, task in pcfg.tasks.items():
        try:
            picked[name] = (
                task,
                select(
                    task.format, task.root, task.reader, task.label,
                    {"train": task.train_size, "val": task.val_size}, pcfg.seed, task.classes,
                ),
            )  # fmt: skip
        except (DatasetError, ValueError) as e:
            raise OnlineProbeInputError(
                f"online_probe.tasks.{name}: {e} (set online_probe.tasks.{name}.root, "
                f"online_probe.tasks.{name}=null or online_probe.enabled=false)"
            ) from None
        found = {record_label(r, task.label) for r in picked[name][1]["train"]}
        if task.kind == "classification" and len(found) < 2:
            raise OnlineProbeInputError(
                f"online_probe.tasks.{name}: the train subset of {task.root} holds {len(found)} "
                "class(es), a classifier needs at least 2"
            )

    frame_cache = build_clip_cache(data)  # the pretraining data's decoded videos (None when off)

    def load() -> list[OnlineTask]:
        tasks = []
        for name, (task, splits) in picked.items():
            clips = {
                split: LabelledClips(
                    video=load_clips(records, spec, size, pcfg.num_workers, frame_cache),
                    target=label_tensor(records, task.label, task.classes),
                    paths=[str(r.path) for r in records],
                )
                for split, records in splits.items()
            }
            n_classes = len(task.classes) if task.classes else None
            tasks.append(OnlineTask(name, task.kind, clips["train"], clips["val"], n_classes))
        return tasks

    norm = data.get("normalization") or {}
    return OnlineProbe(
        load,
        every_n_steps=pcfg.every_n_steps,
        alphas=pcfg.alphas,
        encoder=pcfg.encoder,
        batch_size=pcfg.batch_size,
        mean=norm.get("mean", IMAGENET_MEAN),
        std=norm.get("std", IMAGENET_STD),
        references=pcfg.references,
        pixel_cells=pcfg.pixel_cells,
        motion_cells=pcfg.motion_cells,
        seed=pcfg.seed,
        csv_path=Path(run_dir) / "online_probe.csv",
        setup_seconds=time.perf_counter() - t0,
        from_scratch=from_scratch,
    )
