"""From a task config to cached frozen features per split, and the targets of a split's records.

A task names its datasets (`internal`, and optionally `external`, `pediatric`); each split of each
dataset is turned into a VideoClipDataset with the backbone's preprocessing and the task's clip
sampling, run through the frozen backbone once, and kept in the FeatureCache. Probe inputs
(taskdata.single_view, taskdata.multi_view) are then cheap views of those cached arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from echojepa.data.clipcache import ClipCache
from echojepa.data.clips import ClipSpec
from echojepa.data.datasets import read_index
from echojepa.data.degrade import load_degradation
from echojepa.data.index import DatasetIndex, Record
from echojepa.data.torchdata import VideoClipDataset
from echojepa.precision import autocast_dtype_of, resolve_precision
from echojepa.probe.backbone_base import Backbone
from echojepa.probe.feature_cache import CachedFeatures, FeatureCache
from echojepa.probe.feature_extraction import stream_features
from echojepa.probe.feature_keys import feature_key_parts

log = logging.getLogger(__name__)


def clip_spec(task: Mapping[str, Any], backbone: Backbone, mode: str = "center") -> ClipSpec:
    """Frames come from the backbone (what it was built for); step and segments from the task protocol
    unless the task leaves them null or the backbone fixes its step; start, padding and test-time clip
    count from the backbone (echojepa.data.preprocess.Preprocess.clip_spec)."""
    return backbone.preprocess.clip_spec(task.get("clip"))


# A split whose tokens take at most this many bytes as float32 is read from its memory map once, on first
# use, not per item and epoch: a probe reads every item every epoch, and at CPU demo scale the per-item
# read and float16 conversion of a batch cost as much as a small head's training step. Same values.
DENSE_SPLIT_BYTES = 256 * 2**20


@dataclass
class SplitData:
    """Cached features of one split plus what the probe needs per item."""

    features: CachedFeatures
    records: list[Record]
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) left out of this task
    _dense: Tensor | None = field(default=None, init=False, repr=False)

    def clip_tokens(self, item: int, clips: int | list[int]) -> Tensor:
        """An item's clip tokens as float32: [N, D] for one clip index, [S, N, D] for a list."""
        if self._dense is None and self.tokens.size * 4 <= DENSE_SPLIT_BYTES:
            self._dense = torch.from_numpy(np.asarray(self.tokens, dtype=np.float32))  # [n, S, N, D]
        if self._dense is not None:
            return self._dense[item, clips]
        return torch.from_numpy(np.asarray(self.tokens[item, clips], dtype=np.float32))

    @property
    def tokens(self) -> np.ndarray:  # [n, S, N, D] float16 (memory-mapped)
        return self.features.features

    @property
    def num_clips(self) -> np.ndarray:  # [n]
        return self.features.num_clips


class TaskData:
    """Reads a dataset of the task once and hands out cached features per (split, condition)."""

    def __init__(
        self,
        dataset_cfg: Mapping[str, Any],
        task: Mapping[str, Any],
        backbone: Backbone,
        cache: FeatureCache,
        batch_size: int = 16,
        device: str = "cpu",
        num_workers: int = 0,
        seed: int = 0,
        progress: bool = True,
        frame_cache: ClipCache | None = None,
        feature_precision: str = "32-true",
    ) -> None:
        self.cfg = dict(dataset_cfg)
        self.task = dict(task)
        self.backbone = backbone
        self.cache = cache
        self.batch_size = batch_size
        self.device = device
        self.num_workers = num_workers
        self.seed = seed
        self.progress = progress
        self.frame_cache = frame_cache
        self.feature_precision = resolve_precision(feature_precision, torch.device(device).type)
        self.index: DatasetIndex = read_index(
            self.cfg["format"], Path(self.cfg["root"]), **(self.cfg.get("reader") or {})
        )

    def usable(self, split: str) -> tuple[list[Record], list[tuple[str, str]]]:
        """Records of `split` that carry this task's label (and, for views, a known class)."""
        label, keep, excluded = self.task["label"], [], []
        views = (self.task.get("multiview") or {}).get("views")
        for r in self.index.split(split):
            if label == "view":
                classes = self.task["classes"]
                if r.view not in classes:
                    excluded.append((str(r.path), f"view {r.view!r} is not one of the task's classes"))
                    continue
            elif label not in r.labels or r.labels[label] is None or not np.isfinite(float(r.labels[label])):
                excluded.append((str(r.path), f"no {label} label"))
                continue
            if views is not None and r.view not in views:
                continue  # multi-view tasks only need the listed views; others are not exclusions
            keep.append(r)
        return keep, excluded

    def dataset(
        self, records: Sequence[Record], mode: str, degradation: str | None = None, train_aug: bool = False
    ) -> VideoClipDataset:
        pre = self.backbone.preprocess
        spec = clip_spec(self.task, self.backbone, mode)
        if mode == "all" and self.task.get("multiview"):
            # contiguous windows from frame 0 (MultiViewInputs takes the first C of them)
            spec = replace(spec, segments=1, all_clips=None)
        transform = pre.transform(train_aug)
        deg = None if degradation in (None, "original", "none") else load_degradation(degradation)
        # an entry keeps no sector mask: passes that need one (a degradation, a masking backbone) decode
        frames = self.frame_cache if deg is None and not pre.sector_mask else None
        return VideoClipDataset(
            records, spec, transform, mode=mode, degradation=deg, seed=self.seed, frame_cache=frames
        )

    def decoding_workers(self, ds: VideoClipDataset) -> int:
        """Loader workers for a feature pass over ``ds``: none when the frame cache holds every video (a
        pass that only reads memory maps is faster without starting worker processes), ``num_workers``
        when something is decoded. The features do not depend on it (echojepa.data.torchdata)."""
        cache = ds.frame_cache
        if cache is not None and all(cache.has_entry(r.path) for r in ds.records):
            return 0
        return self.num_workers

    def split(
        self, split: str, mode: str = "center", degradation: str | None = None, aug_view: int | None = None
    ) -> SplitData:
        records, excluded = self.usable(split)
        if not records:
            raise ValueError(f"{self.cfg['root']}: no usable {split} records for task {self.task['name']}")
        # an augmented training view: random clip starts (single-view) or every window (mode "all",
        # multi-view), always with the training transform (random resized crop)
        view_mode = mode if aug_view is None or mode == "all" else "random"
        ds = self.dataset(records, view_mode, degradation, train_aug=aug_view is not None)
        parts = feature_key_parts(
            self.backbone,
            ds,
            format=self.cfg["format"],
            root=self.cfg["root"],
            split=split,
            aug_view=aug_view,
            degradation_name=degradation,
            precision=self.feature_precision,
        )
        feats = self.cache.get_or_compute(
            parts,
            lambda: stream_features(
                self.backbone,
                ds,
                self.batch_size,
                self.device,
                self.progress,
                aug_view=aug_view,
                num_workers=self.decoding_workers(ds),
                autocast_dtype=autocast_dtype_of(self.feature_precision),
            ),
            expect_paths=[str(r.path) for r in records],  # row i must be record i: targets follow records
        )
        if excluded:
            log.info(
                "%s/%s: %d records without a usable %s label left out",
                self.cfg["format"],
                split,
                len(excluded),
                self.task["label"],
            )
        return SplitData(feats, records, excluded)


def targets(records: Sequence[Record], task: Mapping[str, Any]) -> np.ndarray:
    if task["label"] == "view":
        classes = list(task["classes"])
        return np.array([classes.index(r.view) for r in records], dtype=np.int64)
    return np.array([float(r.labels[task["label"]]) for r in records], dtype=np.float64)
