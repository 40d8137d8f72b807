"""The pretraining DataModule from the `data` config group (and the synthetic world on first use)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echojepa.confkeys import parse, reads
from echojepa.data.clipcache import ClipCache
from echojepa.data.clips import ClipSpec
from echojepa.data.datamodules import VideoDataModule
from echojepa.synth.config import WorldRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheConfig:
    """`data.cache`: the decoded-video cache (echojepa/data/clipcache.py; conf/data/*.yaml documents it)."""

    enabled: bool = False
    dir: str | None = None
    short_side_scale: float = 1.5
    max_gb: float | None = None
    warm: bool = False
    warm_workers: int | None = None
    open_entries: int = 256
    decode_chunk: int = 128


@reads("data")
@dataclass(frozen=True)
class DataConfig:
    """conf/data/*.yaml: the pretraining videos and how clips are cut from them."""

    format: str
    root: str
    img_size: int
    batch_size: int
    clip: ClipSpec = field(default_factory=ClipSpec)
    synth: WorldRef | None = None  # the synthetic world `root` points into (written on first use)
    reader: dict = field(default_factory=dict)  # the format reader's options (echojepa/data/datasets/)
    splits: list[str] = field(default_factory=lambda: ["train"])
    num_workers: int = 0
    persistent_workers: bool = False
    cache: CacheConfig = field(default_factory=CacheConfig)
    normalization: dict | None = None  # {mean, std}; ImageNet statistics when absent
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (0.9, 1.1)


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
    cache = parse(CacheConfig, data_cfg.get("cache") or {}, "data.cache")
    if not cache.enabled:
        return None
    return ClipCache(
        cache.dir,
        short_side=math.ceil(data_cfg["img_size"] * float(cache.short_side_scale)),
        max_gb=cache.max_gb,
        open_entries=cache.open_entries,
        decode_chunk=cache.decode_chunk,
    )


def build_datamodule(cfg: dict[str, Any]) -> VideoDataModule:
    data = parse(DataConfig, cfg["data"], "data")
    ensure_synthetic(cfg["data"])
    clip_cache = build_clip_cache(cfg["data"])
    norm = data.normalization or {}
    kwargs: dict[str, Any] = {}
    if norm:
        kwargs.update(mean=norm["mean"], std=norm["std"])
    return VideoDataModule(
        format=data.format,
        root=data.root,
        reader_options=data.reader or {},
        spec=data.clip,
        size=data.img_size,
        batch_size=data.batch_size,
        num_workers=data.num_workers,
        persistent_workers=data.persistent_workers,
        clip_cache=clip_cache,
        warm_cache=data.cache.warm,
        warm_workers=data.cache.warm_workers,
        seed=cfg.get("seed", 0),
        train_splits=tuple(data.splits),
        val_splits=(),
        scale=tuple(data.crop_scale),
        ratio=tuple(data.crop_ratio),
        **kwargs,
    )
