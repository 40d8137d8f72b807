"""Decoded labelled subsets kept between runs, next to the decoded-video cache.

The online probes decode a few hundred fixed clips at fit start (echojepa.data.labelled_subset). A study
pretrains several objectives on one world, a run resumes, a recipe trial reruns: each would decode the
same clips again. The whole subset, uint8 ``[N, C, T, H, W]``, is stored once as one verified entry
(echojepa.data.npy_entry) under ``<clip cache>/subsets/``, keyed by every video's clip-cache key (path,
size, mtime, stored size, decoder source), the clip spec, the output size, and a hash of the code that
cuts and resizes clips, so a changed file, setting or loader never serves a stale subset. A damaged
entry is reported, removed and decoded again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from echojepa.data.clipcache import ClipCache
from echojepa.data.clips import ClipSpec
from echojepa.data.npy_entry import EntryError, read_entry, remove_entry, write_entry

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# the code between an entry of the clip cache and a subset clip: clip indices, resize, crop, stacking
_LOADER_FILES = ("clips.py", "torchdata.py", "transforms.py", "labelled_subset.py", "subset_store.py")


@functools.cache
def _loader_hash() -> str:
    h = hashlib.sha256()
    for name in _LOADER_FILES:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()


class SubsetStore:
    """Subsets of one clip cache (its `root`/subsets)."""

    def __init__(self, cache: ClipCache) -> None:
        self.cache = cache
        self.root = cache.root / "subsets"

    def key_parts(self, paths: Sequence[str | Path], spec: ClipSpec, size: int) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "videos": [self.cache.key_parts(p) for p in paths],
            "clip": dataclasses.asdict(spec),
            "size": int(size),
            "loader": _loader_hash(),
        }

    def _paths(self, parts: dict[str, Any]) -> tuple[Path, Path]:
        key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
        return self.root / f"{key}.npy", self.root / f"{key}.json"

    def load(self, parts: dict[str, Any]) -> Tensor | None:
        """The stored subset (in memory), or None when there is none or it was damaged (then removed)."""
        npy, meta_path = self._paths(parts)
        if not meta_path.is_file():
            return None
        try:
            video, _ = read_entry(npy, meta_path, parts, mmap=False)
        except EntryError as exc:
            log.warning("online-probe subset: %s; decoding it again", exc)
            remove_entry(npy, meta_path)
            return None
        return torch.from_numpy(video)

    def save(self, parts: dict[str, Any], video: Tensor) -> None:
        npy, meta_path = self._paths(parts)
        self.root.mkdir(parents=True, exist_ok=True)
        write_entry(npy, meta_path, np.ascontiguousarray(video.numpy()), parts)
