"""Torch datasets over a DatasetIndex: one item = the clips of one video, decoded on demand.

Randomness never depends on worker count or on process history: every item draws from generators
derived from (seed, epoch, index) alone. The epoch comes either from `set_epoch()` or, more robustly,
from the key itself: `dataset[(index, epoch)]`, which is what `EpochShuffleSampler` yields, so
persistent DataLoader workers (that hold stale dataset copies) still see the right epoch.

Geometry is shared by all clips of one video: the unique decoded frames are transformed together
(one crop, one sector mask, one set of degradation parameters per video) and then gathered into clips.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

import echojepa.io as eio
from echojepa.data.clipcache import ClipCache
from echojepa.data.clips import CLIP_MODES, ClipMode, ClipSpec, sample_clip_indices
from echojepa.data.degrade import Degradation
from echojepa.data.index import Record
from echojepa.data.preprocess import zero_padding
from echojepa.data.transforms import VideoTransform, split_normalize, to_tensor_video
from echojepa.io.types import VideoReadError

# Independent streams per item, so enabling one (e.g. a degradation) never shifts another (the crop).
_STREAM_CLIPS, _STREAM_TRANSFORM, _STREAM_DEGRADE = range(3)


def item_seed_sequence(seed: int, epoch: int, index: int) -> np.random.SeedSequence:
    """The root of all randomness for one item in one epoch."""
    return np.random.SeedSequence([int(seed), int(epoch), int(index)])


def _torch_generator(ss: np.random.SeedSequence) -> torch.Generator:
    return torch.Generator().manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0]))


class VideoClipDataset(Dataset):
    """Clips of each record's video as `[S, C, T, H, W]` plus labels and grouping ids.

    `transform` follows echojepa.data.transforms' convention; a trailing Normalize is applied after
    `degradation` (degradations are defined on 0-1 intensities). For mode "all", S varies per video:
    batch with `collate_clips`, which pads and reports `num_clips`.
    Categorical labels (strings) need `label_classes[key]` (the class list); numeric labels become float32.
    With `frame_cache` (echojepa.data.clipcache) frames come from each video's cached entry, decoded once
    at a bounded size, instead of from the file; it keeps no sector mask, so it refuses a degradation.
    """

    def __init__(
        self,
        records: Sequence[Record],
        spec: ClipSpec,
        transform: VideoTransform | None,
        label_keys: Sequence[str] = (),
        mode: ClipMode = "random",
        degradation: Degradation | None = None,
        seed: int = 0,
        label_classes: Mapping[str, Sequence[str]] | None = None,
        frame_cache: ClipCache | None = None,
    ) -> None:
        if mode not in CLIP_MODES:
            raise ValueError(f"unknown clip mode {mode!r}; expected one of {CLIP_MODES}")
        if frame_cache is not None and degradation is not None:
            raise ValueError(
                "a frame_cache keeps no sector mask, which a degradation needs: use one or the other"
            )
        self.records = list(records)
        self.spec = spec
        self.transform = transform
        self.label_keys = list(label_keys)
        self.mode = mode
        self.degradation = degradation
        self.seed = seed
        self.label_classes = {k: list(v) for k, v in (label_classes or {}).items()}
        self.frame_cache = frame_cache
        self.epoch = 0
        self._pre, self._post = split_normalize(transform) if degradation is not None else (transform, None)
        self._probed: dict[int, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def frame_info(self, index: int) -> tuple[int, float]:
        """(frame count, fps) of a record's video, probed once and cached (or from its cache entry)."""
        if self.frame_cache is not None:
            source = self.frame_cache.open(self.records[index].path)
            return source.num_frames, source.fps
        if index not in self._probed:
            info = eio.video_info(self.records[index].path)
            self._probed[index] = (int(info.frames), float(info.fps))
        return self._probed[index]

    def _decode(self, path: Any, unique: np.ndarray) -> tuple[Tensor, Tensor | None]:
        """The sorted unique frames as float video [C, U, H, W] in 0-1, plus the sector mask if any."""
        if self.frame_cache is not None:
            return to_tensor_video(self.frame_cache.open(path).take(unique)), None
        decoded = eio.read_video(
            path, frame_indices=unique.tolist(), estimate_mask=self.degradation is not None
        )
        if decoded.frames.shape[0] != unique.size:
            raise VideoReadError(
                str(path), f"decoder returned {decoded.frames.shape[0]} frames, expected {unique.size}"
            )
        mask = torch.from_numpy(np.asarray(decoded.mask, dtype=bool)) if decoded.mask is not None else None
        return to_tensor_video(decoded.frames), mask

    def _labels(self, record: Record) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for key in self.label_keys:
            if key not in record.labels:
                raise ValueError(f"{record.path}: missing label {key!r}")
            value = record.labels[key]
            if isinstance(value, str):
                classes = self.label_classes.get(key)
                if classes is None or value not in classes:
                    raise ValueError(f"{record.path}: label {key}={value!r} is not in label_classes[{key!r}]")
                out[key] = torch.tensor(classes.index(value), dtype=torch.long)
            else:
                out[key] = torch.tensor(float(value), dtype=torch.float32)
        return out

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), self.epoch)
        record = self.records[index]
        ss_clips, ss_transform, ss_degrade = item_seed_sequence(self.seed, epoch, index).spawn(3)
        n_frames, fps = self.frame_info(index)
        clips = sample_clip_indices(n_frames, fps, self.spec, np.random.default_rng(ss_clips), self.mode)

        unique = np.unique(clips)  # sorted: decode each needed frame once
        video, mask = self._decode(record.path, unique)  # [C, U, H, W]
        if self._pre is not None:
            video, mask = self._pre(video, mask, _torch_generator(ss_transform))
        if self.degradation is not None:
            video = self.degradation.apply(video, mask, _torch_generator(ss_degrade))
        if self._post is not None:
            video, mask = self._post(video, mask, None)

        pos = torch.from_numpy(np.searchsorted(unique, clips))  # [S, T] positions into the unique frames
        c, _, h, w = video.shape
        clip_video = video[:, pos.reshape(-1)].reshape(c, *pos.shape, h, w).transpose(0, 1)  # [S, C, T, H, W]
        clip_video = zero_padding(clip_video, clips, n_frames, fps, self.spec)  # spec.pad "zero" only
        return {
            "video": clip_video.contiguous(),
            "labels": self._labels(record),
            "index": index,
            "patient": record.patient,
            "study": record.study,
            "view": record.view,
            "frame_indices": torch.from_numpy(clips),  # [S, T] source frames, for tracing predictions back
        }


def collate_clips(batch: Sequence[Mapping[str, Any]], single_segment: bool = False) -> dict[str, Any]:
    """Batch VideoClipDataset items.

    video: `[B, S_max, C, T, H, W]`, zero-padded along S, with `num_clips` `[B]` and `clip_mask`
    `[B, S_max]` (True for real clips). With `single_segment=True` every item must hold exactly one
    clip and video is `[B, C, T, H, W]`. Labels stack per key; ids stay lists.
    """
    if not batch:
        raise ValueError("collate_clips got an empty batch")
    videos = [item["video"] for item in batch]
    counts = torch.tensor([v.shape[0] for v in videos], dtype=torch.long)
    out: dict[str, Any] = {}
    if single_segment:
        if int(counts.max()) != 1 or int(counts.min()) != 1:
            raise ValueError(f"single_segment batches need one clip per item, got {counts.tolist()}")
        out["video"] = torch.stack([v[0] for v in videos])  # [B, C, T, H, W]
        out["frame_indices"] = torch.stack([item["frame_indices"][0] for item in batch])  # [B, T]
    else:
        s_max = int(counts.max())
        padded = videos[0].new_zeros((len(videos), s_max, *videos[0].shape[1:]))  # [B, S_max, C, T, H, W]
        frame_idx = torch.full(
            (len(videos), s_max, videos[0].shape[2]), -1, dtype=torch.long
        )  # [B, S_max, T]
        for i, item in enumerate(batch):
            padded[i, : counts[i]] = item["video"]
            frame_idx[i, : counts[i]] = item["frame_indices"]
        out["video"] = padded
        out["frame_indices"] = frame_idx
        out["clip_mask"] = torch.arange(s_max)[None, :] < counts[:, None]
    out["num_clips"] = counts
    out["labels"] = {k: torch.stack([item["labels"][k] for item in batch]) for k in batch[0]["labels"]}
    out["index"] = torch.tensor([item["index"] for item in batch], dtype=torch.long)
    for key in ("patient", "study", "view"):
        out[key] = [item[key] for item in batch]
    return out


class EpochShuffleSampler(DistributedSampler):
    """Yields `(index, epoch)` keys in an order seeded from (seed, epoch) only.

    A DistributedSampler subclass so Lightning neither replaces nor wraps it and calls `set_epoch` each
    epoch; pass `num_replicas`/`rank` explicitly (1/0 without distributed training). Each replica gets
    every `num_replicas`-th key of the shared order, padded by wrap-around unless `drop_last`.
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self._resume: tuple[int, int] | None = None  # (epoch, items of this replica already consumed)

    def resume_at(self, epoch: int, consumed_items: int) -> None:
        """Make the next pass over `epoch` start after its first `consumed_items` items (mid-epoch resume).

        Also moves the sampler to `epoch` at once: Lightning creates the resumed epoch's iterator before
        it calls `set_epoch`, and a worker-backed DataLoader starts drawing from the sampler right then.
        """
        self._resume = (int(epoch), int(consumed_items))
        self.set_epoch(epoch)

    def order(self) -> list[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        if not self.shuffle:
            return list(range(n))
        ss = np.random.SeedSequence([int(self.seed), int(self.epoch)])
        g = torch.Generator().manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0]))
        return torch.randperm(n, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = self.order()
        if self.drop_last:
            indices = indices[: self.total_size]
        elif len(indices) < self.total_size:
            pad = self.total_size - len(indices)
            indices += (indices * math.ceil(pad / max(len(indices), 1)))[:pad]
        mine = indices[self.rank : self.total_size : self.num_replicas]
        if self._resume is not None:
            epoch, consumed = self._resume
            self._resume = None  # one pass only; a pass over another epoch means the resume is stale
            if epoch == self.epoch:
                mine = mine[consumed:]
        for i in mine:
            yield i, self.epoch


def worker_init(worker_id: int) -> None:
    """One intra-op thread per DataLoader worker: parallelism comes from the workers themselves."""
    torch.set_num_threads(1)
