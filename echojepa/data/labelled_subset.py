"""A fixed, seeded subset of labelled clips from one split of a dataset, decoded once into memory.

Used by the online probes of pretraining (echojepa.pretrain.online_probe): a few hundred clips whose
labels (a view class or a number such as EF) are known, read through the project's own readers and
clip loading, so they look exactly like what the encoder trains on (one centred clip per video, eval
geometry: resize the short side, centre crop). Clips are kept as uint8 `[N, C, T, H, W]` (a quarter of
float32's memory); the caller normalises them batch by batch.

Selection is a seeded permutation of the eligible records of the split (those that carry the label,
and, for a class label, one of the listed classes), so the subset depends on (index, split, seed)
only. A reader that probes every file's header up front (MIMIC: to exclude stills and Doppler
spectra) is asked not to; only the drawn candidates are probed, and a non-cine candidate is passed
over for the next one in the seeded order. That keeps a 500-study index at a fraction of a second
instead of seconds.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from echojepa.data.clipcache import ClipCache
from echojepa.data.clips import ClipSpec
from echojepa.data.datasets import READERS, DatasetError, read_index
from echojepa.data.index import Record
from echojepa.data.subset_store import SubsetStore
from echojepa.data.torchdata import VideoClipDataset
from echojepa.data.transforms import CenterCrop, Compose, Resize

log = logging.getLogger(__name__)

# The label "view" is the record's view field (MIMIC view_labels.csv); any other name is a key of
# Record.labels (ef, rvsp, ...).
VIEW_LABEL = "view"


@dataclass
class LabelledClips:
    """Decoded clips and their targets: class indices (long) or values in real units (float32)."""

    video: Tensor  # [N, C, T, H, W] uint8
    target: Tensor  # [N]
    paths: list[str]


def record_label(record: Record, label: str) -> float | str | None:
    """The record's value of `label`, None when it has none."""
    if label == VIEW_LABEL:
        return record.view
    return record.labels.get(label)


def eligible(records: Sequence[Record], label: str, classes: Sequence[str] | None) -> list[Record]:
    """Records that carry `label` (and, for a class label, one of `classes`)."""
    out = []
    for r in records:
        value = record_label(r, label)
        if value is None:
            continue
        if classes is not None and value not in classes:
            continue
        out.append(r)
    return out


def seeded_order(n: int, seed: int) -> list[int]:
    """A permutation of range(n) that depends on (n, seed) only (never on global RNG state)."""
    return np.random.default_rng(seed).permutation(n).tolist()


def _is_cine(path: Path) -> bool:
    import echojepa.io as eio
    from echojepa.io.types import NotACineError

    try:
        return eio.video_info(path).kind == "cine"
    except NotACineError:
        return False


def draw(records: Sequence[Record], size: int, seed: int, probe_kind: bool) -> list[Record]:
    """Up to `size` records in seeded order; with `probe_kind`, non-cine files are passed over."""
    picked: list[Record] = []
    for i in seeded_order(len(records), seed):
        if len(picked) == size:
            break
        if probe_kind and not _is_cine(records[i].path):
            continue
        picked.append(records[i])
    return picked


def _reader_options(format: str, reader: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """Reader options with the up-front header probe turned off (when the reader has one), and whether
    the drawn candidates must be probed instead."""
    options = dict(reader)
    fn = READERS.get(format)
    if fn is not None and "probe_files" in inspect.signature(fn).parameters and "probe_files" not in options:
        options["probe_files"] = False
        return options, True
    return options, False


def select(
    format: str,
    root: str | Path,
    reader: Mapping[str, Any],
    label: str,
    splits: Mapping[str, int],
    seed: int,
    classes: Sequence[str] | None = None,
) -> dict[str, list[Record]]:
    """The drawn records per split, e.g. splits={"train": 128, "val": 64}; no decoding.

    Raises DatasetError (naming the root and the reason) for a missing root or a split without any
    labelled record.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(root, "dataset root does not exist")
    options, probe_kind = _reader_options(format, reader)
    index = read_index(format, root, **options)
    out: dict[str, list[Record]] = {}
    for split, size in splits.items():
        pool = eligible(index.split(split), label, classes)
        picked = draw(pool, size, seed, probe_kind)
        if not picked:
            raise DatasetError(root, f"no {split} clip carries the label {label!r}")
        if len(picked) < size:
            log.info("%s: %s split has %d labelled clips (%d asked for)", root, split, len(picked), size)
        out[split] = picked
    return out


def label_tensor(records: Sequence[Record], label: str, classes: Sequence[str] | None) -> Tensor:
    """Class indices into `classes` (long) or real-valued targets (float32)."""
    values = [record_label(r, label) for r in records]
    if classes is not None:
        return torch.tensor([list(classes).index(v) for v in values], dtype=torch.long)
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


def load_clips(
    records: Sequence[Record],
    spec: ClipSpec,
    size: int,
    num_workers: int = 0,
    frame_cache: ClipCache | None = None,
) -> Tensor:
    """One centred clip per record, resized and centre-cropped to `size`: uint8 `[N, C, T, H, W]`.

    With `frame_cache` (the pretraining data's decoded-video cache) frames come from each video's entry
    where one exists (the videos the pretraining run warmed), as the pretraining clips do, and are
    otherwise decoded per clip with the very same pixels, without storing the whole video (a probe reads
    one clip of it; echojepa.data.clipcache.ClipCache.reading_only). The finished subset is then kept in
    the cache's subset store (echojepa.data.subset_store), so the next run on the same world (the study's
    second objective, a resume, a recipe trial) decodes nothing."""
    store = SubsetStore(frame_cache) if frame_cache is not None else None
    if store is not None:
        parts = store.key_parts([r.path for r in records], spec, size)
        stored = store.load(parts)
        if stored is not None:
            return stored
    reader = frame_cache.reading_only() if frame_cache is not None else None
    video = _decode_clips(records, spec, size, num_workers, reader)
    if store is not None:
        store.save(parts, video)
    return video


def _decode_clips(
    records: Sequence[Record], spec: ClipSpec, size: int, num_workers: int, frame_cache: ClipCache | None
) -> Tensor:
    transform = Compose([Resize(size), CenterCrop(size)])
    dataset = VideoClipDataset(records, spec, transform, mode="center", frame_cache=frame_cache)
    if num_workers > 0:
        from torch.utils.data import DataLoader

        from echojepa.data.torchdata import worker_init

        # A loader with an explicit generator: its base seed is drawn from that, not from torch's global
        # RNG, so loading here never shifts the training run's random stream.
        loader = DataLoader(
            dataset,
            batch_size=None,
            num_workers=num_workers,
            worker_init_fn=worker_init,
            generator=torch.Generator().manual_seed(0),
        )
        items = list(loader)
    else:
        items = [dataset[i] for i in range(len(dataset))]
    # [1, C, T, H, W] float 0-1 per item (mode "center", one segment) -> uint8
    return torch.stack([(it["video"][0] * 255.0).round_().to(torch.uint8) for it in items])


def read_labelled_subset(
    format: str,
    root: str | Path,
    reader: Mapping[str, Any],
    label: str,
    sizes: Mapping[str, int],
    seed: int,
    spec: ClipSpec,
    size: int,
    classes: Sequence[str] | None = None,
    num_workers: int = 0,
) -> dict[str, LabelledClips]:
    """`select` + `load_clips` + `targets`: {split: LabelledClips}."""
    picked = select(format, root, reader, label, sizes, seed, classes)
    return {
        split: LabelledClips(
            video=load_clips(records, spec, size, num_workers),
            target=label_tensor(records, label, classes),
            paths=[str(r.path) for r in records],
        )
        for split, records in picked.items()
    }
