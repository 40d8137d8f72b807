"""LightningDataModule for self-supervised pretraining on echo clips.

Built from a DatasetIndex, or from `format` + `root` (+ reader options) through
echojepa.data.datasets.read_index. The train loader shuffles with an order seeded from (seed, epoch)
and gives every item randomness derived from (seed, epoch, index), so a resumed run and any
num_workers see the same batches. Plain arguments only: usable without Hydra.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from echojepa.data.clipcache import ClipCache
from echojepa.data.clips import ClipSpec
from echojepa.data.datasets import DatasetError
from echojepa.data.index import SPLITS, DatasetIndex, Record
from echojepa.data.torchdata import EpochShuffleSampler, VideoClipDataset, collate_clips, worker_init
from echojepa.data.transforms import build_transform

# V-JEPA 2 checkpoints were trained with ImageNet statistics; configs override these for other backbones.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

log = logging.getLogger(__name__)


class TimedIterator:
    """A DataLoader iterator that adds the seconds each `next()` blocks to its loader's `wait_s`."""

    def __init__(self, iterator: Iterator[Any], loader: ResumableDataLoader) -> None:
        self._iterator, self._loader = iterator, loader

    def __iter__(self) -> TimedIterator:
        return self

    def __next__(self) -> Any:
        t0 = self._loader.clock()
        try:
            return next(self._iterator)
        finally:
            self._loader.wait_s += self._loader.clock() - t0

    def __len__(self) -> int:
        return len(self._iterator)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name == "_iterator":  # not set yet (e.g. mid-copy): never recurse
            raise AttributeError(name)
        return getattr(self._iterator, name)


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position inside an epoch is saved in Lightning checkpoints.

    Lightning saves `state_dict()` of loaders that have one and calls `load_state_dict()` on resume.
    The position is the number of batches the training loop consumed (set by the
    `echojepa.pretrain.callbacks.DataPosition` callback), not what the loader prefetched.
    `wait_s` sums the seconds the consumer spent blocked waiting for batches (`clock` measures them).
    """

    def __init__(self, *args: Any, clock: Callable[[], float] = time.perf_counter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._consumed = 0
        self.clock = clock
        self.wait_s = 0.0

    def __iter__(self) -> TimedIterator:  # type: ignore[override]
        return TimedIterator(super().__iter__(), self)

    def mark_consumed(self, batches: int) -> None:
        self._consumed = int(batches)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(getattr(self.sampler, "epoch", 0)), "consumed_batches": self._consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if not isinstance(self.sampler, EpochShuffleSampler):
            raise TypeError("mid-epoch resume needs the EpochShuffleSampler")
        self._consumed = state["consumed_batches"]
        self.sampler.resume_at(state["epoch"], state["consumed_batches"] * int(self.batch_size or 1))


class VideoDataModule(L.LightningDataModule):
    """Random single clips with pretraining augmentation (train) and centred clips (val).

    Batches: {"video": [B, C, T, H, W] (or [B, S, C, T, H, W] when spec.segments > 1), "num_clips",
    "index", "patient", "study", "view", "labels", "frame_indices"}. The train loader drops the last
    incomplete batch; an empty val selection gives no val loader (an empty list).
    `clip_cache`: frames come from decoded entries (echojepa.data.clipcache) instead of the files;
    `warm_cache` builds every missing train entry in `setup`, in `warm_workers` processes (default
    `num_workers`), so the first epoch does not wait for decoding.
    """

    def __init__(
        self,
        index: DatasetIndex | None = None,
        *,
        format: str | None = None,
        root: str | Path | None = None,
        reader_options: Mapping[str, Any] | None = None,
        spec: ClipSpec | Mapping[str, Any] | None = None,
        size: int = 112,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        train_splits: Sequence[str] = ("train",),
        val_splits: Sequence[str] = ("val",),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        scale: Sequence[float] = (0.5, 1.0),
        ratio: Sequence[float] = (0.9, 1.1),
        interpolation: str = "bilinear",
        pin_memory: bool = False,
        persistent_workers: bool = False,
        clip_cache: ClipCache | None = None,
        warm_cache: bool = False,
        warm_workers: int | None = None,
    ) -> None:
        super().__init__()
        if index is None and (format is None or root is None):
            raise ValueError("VideoDataModule needs either an index or both format and root")
        for split in (*train_splits, *val_splits):
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        self.index = index
        self.format = format
        self.root = Path(root) if root is not None else None
        self.reader_options = dict(reader_options or {})
        self.spec = spec if isinstance(spec, ClipSpec) else ClipSpec(**(spec or {}))
        self.size = size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.train_splits = tuple(train_splits)
        self.val_splits = tuple(val_splits)
        self.mean, self.std = tuple(mean), tuple(std)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation = interpolation
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.clip_cache = clip_cache
        self.warm_cache = warm_cache and clip_cache is not None
        self.warm_workers = num_workers if warm_workers is None else int(warm_workers)
        self._warmed = False
        self.train_set: VideoClipDataset | None = None
        self.val_set: VideoClipDataset | None = None

    def _load_index(self) -> DatasetIndex:
        if self.index is None:
            from echojepa.data.datasets import read_index  # readers pull in format-specific deps

            assert self.format is not None and self.root is not None
            self.index = read_index(self.format, self.root, **self.reader_options)
        return self.index

    def _records(self, splits: Sequence[str]) -> list[Record]:
        return [r for r in self._load_index().records if r.split in splits]

    def setup(self, stage: str | None = None) -> None:
        train = self._records(self.train_splits)
        if not train:
            raise DatasetError(
                self._load_index().root, f"no records in the training split(s) {', '.join(self.train_splits)}"
            )
        self._check_fills_a_batch(len(train), replicas=1)
        self.train_set = VideoClipDataset(
            train,
            self.spec,
            build_transform(True, self.size, self.mean, self.std, self.scale, self.ratio, self.interpolation),
            mode="random",
            seed=self.seed,
            frame_cache=self.clip_cache,
        )
        if self.warm_cache and not self._warmed:
            self._warm(train)
        val = self._records(self.val_splits)
        self.val_set = (
            VideoClipDataset(
                val,
                self.spec,
                build_transform(False, self.size, self.mean, self.std, interpolation=self.interpolation),
                mode="center",
                seed=self.seed,
                frame_cache=self.clip_cache,
            )
            if val
            else None
        )

    def _warm(self, records: Sequence[Record]) -> None:
        assert self.clip_cache is not None
        t0 = time.perf_counter()
        counts = self.clip_cache.fill([r.path for r in records], num_workers=self.warm_workers)
        self._warmed = True
        log.info(
            "clip cache %s: %d train videos ready in %.1f s (%d past the size budget, decoded per item)",
            self.clip_cache.root,
            counts["videos"],
            time.perf_counter() - t0,
            counts["over_budget"],
        )

    def _check_fills_a_batch(self, videos: int, replicas: int) -> None:
        if videos // replicas < self.batch_size:
            raise DatasetError(
                self._load_index().root,
                f"{videos} training videos over {replicas} replica(s) cannot fill one batch of "
                f"{self.batch_size} (the last incomplete batch is dropped)",
            )

    def _replicas(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader(self, dataset: VideoClipDataset, **kwargs: Any) -> DataLoader:
        return ResumableDataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=partial(collate_clips, single_segment=self.spec.segments == 1),
            worker_init_fn=worker_init if self.num_workers > 0 else None,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None
        replicas, rank = self._replicas()
        self._check_fills_a_batch(len(self.train_set), replicas)
        sampler = EpochShuffleSampler(
            self.train_set, replicas, rank, shuffle=True, seed=self.seed, drop_last=True
        )
        return self._loader(self.train_set, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.train_set is None:
            self.setup("validate")
        if self.val_set is None:
            return []
        return self._loader(self.val_set, shuffle=False, drop_last=False)
