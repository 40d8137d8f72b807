"""Decoded videos cached once per file: uint8 frames at a bounded size, read memory-mapped.

Decoding is most of what a pretraining item costs (JPEG + YBR conversion of every DICOM frame, the fan
mask, a full-resolution resize); the model sees 64-224 px. An entry holds every frame of one video,
shrunk so its shorter side is at most ``short_side`` (never enlarged), as ``uint8 [F, h, w, 3]``:

    <root>/<key[:2]>/<key>.npy     the frames (NumPy format, opened with mmap_mode="r")
    <root>/<key[:2]>/<key>.json    the key parts, shape, fps and a crc32 of the frames

Both are written atomically (echojepa.io.atomic), the JSON last: an entry without its JSON does not exist.
The key is a sha256 over the file's resolved path, size and mtime (ns), the stored size and
interpolation, and a hash of the decoding source (echojepa.io and this module), so a replaced file,
another size or edited decoder code never serves stale pixels. Opening an entry checks the JSON against
the key, the array's shape and dtype, and the crc32 of the frames; a damaged entry is reported, removed
and rebuilt from the video.

The pixels a reader gets never depend on whether an entry existed: a miss decodes the video and resizes
it exactly as an entry holds it, and when the size budget (``max_gb``) is spent, the needed frames are
decoded and resized the same way without being stored.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import echojepa.io as eio
from echojepa.data.datasets import DatasetError
from echojepa.data.npy_entry import EntryError, read_entry, remove_entry, write_entry
from echojepa.io.types import VideoReadError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def stored_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(h, w) an entry stores for frames of (height, width): the shorter side at most ``short_side``,
    the aspect kept; frames already that small, and every frame when ``short_side`` is None, are stored
    as decoded."""
    short = min(height, width)
    if short_side is None or short <= short_side:
        return height, width
    scale = short_side / short
    return max(1, round(height * scale)), max(1, round(width * scale))


def shrink_frames(frames: np.ndarray, hw: tuple[int, int], interpolation: str = "bilinear") -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` -> uint8 ``[T, h, w, 3]``: antialiased resize (as the transforms do), then
    rounding to the nearest level. Each frame is resized on its own, so a frame's pixels do not depend
    on which other frames are decoded with it."""
    if tuple(frames.shape[1:3]) == tuple(hw):
        return np.ascontiguousarray(frames)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # [T, 3, H, W] 0-255
    x = F.interpolate(x, size=hw, mode=interpolation, align_corners=False, antialias=True)
    out = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # [T, h, w, 3]
    return np.ascontiguousarray(out.numpy())


def _source_hash() -> str:
    """sha256 over the source of the decoder (echojepa.io) and of this module: an edit re-keys every entry."""
    files = sorted(Path(eio.__file__).parent.glob("*.py")) + [Path(__file__)]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CachedVideo:
    """One video's frames at the stored size, in memory or memory-mapped (read-only)."""

    frames: np.ndarray  # uint8 [F, h, w, 3]
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def take(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 ``[len(indices), h, w, 3]``: a copy of the listed frames."""
        return np.ascontiguousarray(self.frames[np.asarray(indices, dtype=np.int64)])


class DirectVideo:
    """A video past the size budget: probed for its frame count and fps, then only the frames asked
    for are decoded and shrunk exactly as an entry would hold them."""

    def __init__(self, path: Path, short_side: int | None, interpolation: str) -> None:
        info = eio.video_info(path)
        self.path = path
        self.fps = float(info.fps)
        self._num_frames = int(info.frames)
        self._short_side = short_side
        self._interpolation = interpolation

    @property
    def num_frames(self) -> int:
        return self._num_frames

    def take(self, indices: Sequence[int]) -> np.ndarray:
        decoded = eio.read_video(self.path, frame_indices=[int(i) for i in indices])
        if decoded.frames.shape[0] != len(indices):
            raise VideoReadError(
                str(self.path), f"decoder returned {decoded.frames.shape[0]} frames, expected {len(indices)}"
            )
        hw = stored_size(*decoded.frames.shape[1:3], self._short_side)  # the decoded (cropped) size
        return shrink_frames(decoded.frames, hw, self._interpolation)


class ClipCache:
    """Entries under ``root`` (created when missing; DatasetError when it cannot be written); see the
    module docstring.

    ``short_side``: the stored frames' shorter side at most; None stores frames as decoded, so a reader
    gets exactly the pixels of the file (what frozen feature passes need to stay equal to the bit to an
    uncached pass), at the decoded size's cost in disk. ``max_gb``: a soft budget on the bytes of
    entries under ``root`` (None: no limit), counted once at construction and then per process; DataLoader
    workers split what is left evenly. ``open_entries``: memory maps kept open per process (least
    recently used closed first; each open map costs one of the kernel's limited map slots).
    ``decode_chunk``: frames decoded at once when an entry is built (bounds the memory of long cines).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        short_side: int | None,
        *,
        max_gb: float | None = None,
        interpolation: str = "bilinear",
        open_entries: int = 256,
        decode_chunk: int = 128,
    ) -> None:
        if short_side is not None and short_side < 1:
            raise ValueError(f"clip cache short_side must be >= 1, got {short_side}")
        if open_entries < 1 or decode_chunk < 1:
            raise ValueError(
                f"open_entries and decode_chunk must be >= 1, got {open_entries}, {decode_chunk}"
            )
        self.root = Path(root)
        try:  # a folder that cannot hold entries is refused now, in one line, not mid-training
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetError(
                self.root, f"cannot create the clip cache folder ({exc.strerror or exc})"
            ) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise DatasetError(self.root, "the clip cache folder is not writable")
        self.short_side = None if short_side is None else int(short_side)
        self.interpolation = interpolation
        self.open_entries = int(open_entries)
        self.decode_chunk = int(decode_chunk)
        self.max_bytes = None if max_gb is None else int(float(max_gb) * 1e9)
        self._used = self._scan_bytes() if self.max_bytes is not None else 0
        self._allowance: tuple[int, int] | None = None  # (pid, byte limit of this process's share)
        self._source: str | None = None
        self._open: OrderedDict[str, CachedVideo] = OrderedDict()
        self._stores = True  # False in a reading_only() view: a miss is decoded per item, not stored

    def reading_only(self) -> ClipCache:
        """A view of the same entries that builds none: a hit reads its entry, a miss decodes only the
        frames asked for, shrunk exactly as an entry would hold them (the same pixels either way). For
        readers of a few clips per video that the run itself will never read again (the online probes'
        validation and EF subsets): storing a whole video for one clip costs twice a direct decode."""
        view = copy.copy(self)
        view._open = OrderedDict()
        view._stores = False
        return view

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()  # memory maps are per process; a worker opens its own
        return state

    # ----- keys and paths -------------------------------------------------------------------------
    def key_parts(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        p = Path(path).resolve()
        try:
            st = p.stat()
        except OSError as exc:
            raise VideoReadError(str(path), f"cannot stat: {exc.strerror or exc}") from None
        if self._source is None:
            self._source = _source_hash()
        return {
            "version": FORMAT_VERSION,
            "path": str(p),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "short_side": self.short_side,
            "interpolation": self.interpolation,
            "source": self._source,
        }

    @staticmethod
    def key(parts: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def entry_paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.json"

    # ----- reading --------------------------------------------------------------------------------
    def has_entry(self, path: str | os.PathLike[str]) -> bool:
        """Whether the video has a stored entry under its current key (not checked here: open checks)."""
        return self.entry_paths(self.key(self.key_parts(path)))[1].is_file()

    def open(self, path: str | os.PathLike[str]) -> CachedVideo | DirectVideo:
        """The video's frames at the stored size: its entry (built on a miss), or, past the budget or in
        a reading_only() view, a reader that decodes on demand with the same pixels."""
        parts = self.key_parts(path)
        key = self.key(parts)
        hit = self._open.get(key)
        if hit is not None:
            self._open.move_to_end(key)
            return hit
        entry = self._load(key, parts)
        if entry is None and self._stores:
            entry = self._build(Path(path), key, parts)
        if entry is None:
            return DirectVideo(Path(path), self.short_side, self.interpolation)
        self._open[key] = entry
        while len(self._open) > self.open_entries:
            self._open.popitem(last=False)
        return entry

    def _load(self, key: str, parts: dict[str, Any]) -> CachedVideo | None:
        """The verified entry, or None when there is none; a damaged one is reported and removed."""
        npy, meta_path = self.entry_paths(key)
        if not meta_path.is_file():
            return None
        try:
            frames, meta = read_entry(npy, meta_path, parts)
        except EntryError as exc:
            log.warning("clip cache: %s; rebuilding the entry", exc)
            remove_entry(npy, meta_path)
            return None
        return CachedVideo(frames=frames, fps=float(meta["fps"]))

    # ----- writing --------------------------------------------------------------------------------
    def _build(self, path: Path, key: str, parts: dict[str, Any]) -> CachedVideo | None:
        """Decode, shrink and store one video; None (nothing decoded) when the budget is spent."""
        info = eio.video_info(path)
        n = int(info.frames)
        if not self._reserve(n * 3 * math.prod(stored_size(info.height, info.width, self.short_side))):
            return None
        chunks = []
        for start in range(0, n, self.decode_chunk):
            wanted = list(range(start, min(start + self.decode_chunk, n)))
            decoded = eio.read_video(path, frame_indices=wanted)
            if decoded.frames.shape[0] != len(wanted):
                raise VideoReadError(
                    str(path), f"decoder returned {decoded.frames.shape[0]} frames, expected {len(wanted)}"
                )
            hw = stored_size(*decoded.frames.shape[1:3], self.short_side)  # the decoded (cropped) size
            chunks.append(shrink_frames(decoded.frames, hw, self.interpolation))
        frames = np.concatenate(chunks)  # [F, h, w, 3]
        npy, meta_path = self.entry_paths(key)
        write_entry(npy, meta_path, frames, parts, fps=float(info.fps))
        self._used += frames.nbytes
        return CachedVideo(frames=np.load(npy, mmap_mode="r", allow_pickle=False), fps=float(info.fps))

    def _reserve(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more fit this process's share of the budget. The share is fixed on the
        first store in each process (a forked worker inherits its parent's counters, so the pid tells)."""
        if self.max_bytes is None:
            return True
        if self._allowance is None or self._allowance[0] != os.getpid():
            worker = torch.utils.data.get_worker_info()
            share = max(self.max_bytes - self._used, 0) // (worker.num_workers if worker else 1)
            self._allowance = (os.getpid(), self._used + share)
        return self._used + nbytes <= self._allowance[1]

    def _scan_bytes(self) -> int:
        if not self.root.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.root.glob("*/*.npy"))

    # ----- filling ahead of training --------------------------------------------------------------
    def fill(self, paths: Iterable[str | os.PathLike[str]], num_workers: int = 0) -> dict[str, int]:
        """Build every missing entry of ``paths`` (in ``num_workers`` processes); returns counts."""
        from torch.utils.data import DataLoader

        todo = [Path(p) for p in paths]
        loader = DataLoader(
            _FillSet(self, todo),
            batch_size=None,
            num_workers=num_workers,
            worker_init_fn=_one_thread if num_workers > 0 else None,
        )
        counts = {"videos": len(todo), "cached": 0, "over_budget": 0}
        for cached in loader:
            counts["cached" if cached else "over_budget"] += 1
        if self.max_bytes is not None:  # the workers' stores are not in this process's count
            self._used, self._allowance = self._scan_bytes(), None
        return counts


class _FillSet(torch.utils.data.Dataset):
    def __init__(self, cache: ClipCache, paths: list[Path]) -> None:
        self.cache, self.paths = cache, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> bool:
        entry = self.cache.open(self.paths[i])
        self.cache._open.clear()  # filling only: keep no maps open
        return isinstance(entry, CachedVideo)


def _one_thread(worker_id: int) -> None:
    torch.set_num_threads(1)  # parallelism comes from the workers themselves
