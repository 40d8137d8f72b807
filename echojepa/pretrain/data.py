"""The pretraining DataModule from the `data` config group (and the synthetic world on first use)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from echojepa.data.clipcache import ClipCache
from echojepa.data.datamodules import VideoDataModule

log = logging.getLogger(__name__)


def ensure_synthetic(data_cfg: dict[str, Any]) -> None:
    """Write the EchoSynth world that `data.root` points into, when the config asks for one and it is
    missing or half-written (no manifest.json: an earlier write was interrupted)."""
    synth = data_cfg.get("synth")
    if not synth:
        return
    from echojepa.synth.ensure import ensure_world

    root = Path(data_cfg["root"])
    ensure_world(root.parent, synth["preset"], synth["seed"])
    if not root.exists():
        raise FileNotFoundError(f"{root}: the synthetic world was written but this dataset folder is missing")


def build_clip_cache(data_cfg: dict[str, Any]) -> ClipCache | None:
    """The decoded-video cache of `data.cache` (None when absent or disabled). Entries store frames with
    the shorter side at most `short_side_scale` x the model's `img_size`."""
    cache = data_cfg.get("cache") or {}
    if not cache.get("enabled", False):
        return None
    return ClipCache(
        cache["dir"],
        short_side=math.ceil(data_cfg["img_size"] * float(cache["short_side_scale"])),
        max_gb=cache.get("max_gb"),
        open_entries=cache.get("open_entries", 256),
        decode_chunk=cache.get("decode_chunk", 128),
    )


def build_datamodule(cfg: dict[str, Any]) -> VideoDataModule:
    data = cfg["data"]
    ensure_synthetic(data)
    clip_cache = build_clip_cache(data)
    norm = data.get("normalization", {})
    kwargs: dict[str, Any] = {}
    if norm:
        kwargs.update(mean=norm["mean"], std=norm["std"])
    return VideoDataModule(
        format=data["format"],
        root=data["root"],
        reader_options=data.get("reader") or {},
        spec=data["clip"],
        size=data["img_size"],
        batch_size=data["batch_size"],
        num_workers=data.get("num_workers", 0),
        persistent_workers=data.get("persistent_workers", False),
        clip_cache=clip_cache,
        warm_cache=bool((data.get("cache") or {}).get("warm", False)),
        warm_workers=(data.get("cache") or {}).get("warm_workers"),
        seed=cfg.get("seed", 0),
        train_splits=tuple(data.get("splits", ["train"])),
        val_splits=(),
        scale=tuple(data.get("crop_scale", (0.5, 1.0))),
        ratio=tuple(data.get("crop_ratio", (0.9, 1.1))),
        **kwargs,
    )
