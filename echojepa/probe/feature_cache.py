"""Frozen features, extracted once (``echojepa.probe.feature_extraction``) and cached on disk under a key
of their parts (``echojepa.probe.feature_keys``).

An entry holds the backbone tokens of every item (video) of one dataset split under one condition:

    <root>/<key>/features.npy   float16 [n_items, S, N, D], opened memory-mapped (S = max clips per item;
                                items with fewer clips are zero-padded, see ``num_clips``)
    <root>/<key>/index.json     one row per item, in item order: record, path, patient, study, view,
                                labels, num_clips
    <root>/<key>/meta.json      the key parts, shape, bytes, sha256 of features.npy and index.json,
                                creation time

The key is a sha256 over the canonical JSON of its parts: backbone identity (kind + config + weights
digest), code version (see ``code_version``), dataset identity (format, root, the record paths IN ORDER
with sizes and mtimes), clip spec, transform, degradation (name, parameters, seed), split, clip mode,
pooling, and the augmentation view index. Changing any part gives a new key, hence a new entry: nothing
is ever overwritten or reused across conditions. Row i of an entry is record i of the dataset it was
keyed on: a re-ordered file list is a new key, and on load the rows' paths are checked against the
records the caller is about to pair with them.

Writes: an entry is written into a temporary folder, its meta.json published last, and the folder
renamed into place, so a run killed half-way (or a compute that raises) leaves no entry that a later
run could load. Reads verify the entry (shapes, checksums, row paths); a damaged entry (zeroed or
truncated features, a 0-byte file, missing or unreadable metadata, rows that do not match) is reported
by path as a warning and rebuilt.

Training-time augmentation with a cache: the train split is cached ``aug_views`` times, each with a
training transform (random clip start, random resized crop) and its own key part ``aug_view=v``; view
``v`` draws its randomness as epoch ``v`` of the VideoClipDataset (``dataset[(index, v)]``), so views
differ from each other but each is reproducible. The probe trainer then uses one cached view per epoch
(``aug_view_for_epoch``: a seeded shuffle of the views, repeated). Validation and test splits use one
deterministic view (``aug_view=None``, eval transform, centre/all clips).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from echojepa.io.atomic import atomic_write_text, fsync_dir
from echojepa.probe.feature_extraction import FeatureStream, IndexRow
from echojepa.probe.feature_keys import canonical_json, describe

log = logging.getLogger(__name__)


# 2: rows keyed in record order, code version in the key, sha256 checksums in meta.json
FORMAT_VERSION = 2


FEATURES_FILE, INDEX_FILE, META_FILE = "features.npy", "index.json", "meta.json"


_TMP_PREFIX = ".tmp-"


_HASH_CHUNK = 1 << 24  # bytes read per step when checksumming an entry


def aug_view_for_epoch(epoch: int, aug_views: int, seed: int = 0) -> int:
    """Which cached augmented view the probe trainer uses in ``epoch``: every view once per round of
    ``aug_views`` epochs, in a seeded order that changes from round to round."""
    if aug_views < 1:
        raise ValueError(f"aug_views must be >= 1, got {aug_views}")
    round_, pos = divmod(int(epoch), aug_views)
    order = np.random.default_rng([int(seed), round_]).permutation(aug_views)
    return int(order[pos])


def estimate_bytes(n_items: int, clips: int, tokens: int, dim: int) -> int:
    """Size of a float16 entry [n_items, clips, tokens, dim]: check before extracting large token caches."""
    return int(n_items) * int(clips) * int(tokens) * int(dim) * 2


@dataclass
class CachedFeatures:
    """One cache entry: ``features`` is a read-only float16 memmap [n_items, S, N, D]."""

    key: str
    path: Path
    features: np.ndarray
    rows: list[IndexRow]
    meta: dict[str, Any]

    @property
    def num_clips(self) -> np.ndarray:
        return np.asarray([r["num_clips"] for r in self.rows], dtype=np.int64)  # [n_items]

    @property
    def clip_mask(self) -> np.ndarray:
        return np.arange(self.features.shape[1])[None, :] < self.num_clips[:, None]  # [n_items, S]

    @property
    def nbytes(self) -> int:
        return int(self.meta["bytes"])


FeatureSource = tuple[np.ndarray, list[IndexRow]] | FeatureStream


class CacheEntryError(ValueError):
    """A feature cache entry that cannot be trusted: missing, incomplete, damaged, or not matching the
    records it is about to be paired with."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _misaligned(rows: Sequence[Any], expect_paths: Sequence[str | os.PathLike[str]]) -> str | None:
    """Why ``rows`` are not the items of ``expect_paths`` in that order (None when they are)."""
    want = [str(p) for p in expect_paths]
    if len(rows) != len(want):
        return f"{len(rows)} rows for {len(want)} records"
    for i, (row, path) in enumerate(zip(rows, want)):
        got = row.get("path") if isinstance(row, dict) else None
        if got != path:
            return f"row {i} holds {got}, the records give {path} (rows from other files or in another order)"
    return None


class FeatureCache:
    """Content-addressed store of extracted features under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.rebuilt = 0  # damaged entries found, reported and written again
        self.bytes_written = 0

    # keys
    @staticmethod
    def key(**parts: Any) -> str:
        """sha256 over the canonical JSON of the key parts (plus the cache format version)."""
        payload = {"format_version": FORMAT_VERSION, **parts}
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key

    def contains(self, key: str) -> bool:
        """An entry was published under ``key`` (it may still turn out damaged on ``load``)."""
        return (self.path(key) / META_FILE).is_file()

    # reading
    def load(
        self, key: str, expect_paths: Sequence[str | os.PathLike[str]] | None = None, verify: bool = True
    ) -> CachedFeatures:
        """Open the entry memory-mapped after checking it: meta.json, the sha256 of features.npy and
        index.json (``verify``), dtype and shape, and, given ``expect_paths``, that row i is the file
        ``expect_paths[i]``. Raises CacheEntryError naming the entry and the reason."""
        entry = self.path(key)
        if not entry.is_dir():
            raise CacheEntryError(entry, f"no feature cache entry {key} under {self.root}")
        try:
            meta = json.loads((entry / META_FILE).read_text())
        except FileNotFoundError:
            raise CacheEntryError(entry, f"{META_FILE} is missing (an incomplete entry)") from None
        except (OSError, ValueError) as err:
            raise CacheEntryError(entry, f"{META_FILE} is unreadable ({err})") from None
        if not (isinstance(meta, dict) and meta.get("key") == key and isinstance(meta.get("sha256"), dict)):
            raise CacheEntryError(entry, f"{META_FILE} does not describe entry {key}")
        if verify:
            for name in (FEATURES_FILE, INDEX_FILE):
                try:
                    digest = file_sha256(entry / name)
                except OSError as err:
                    raise CacheEntryError(entry, f"{name} is unreadable ({err})") from None
                if digest != meta["sha256"].get(name):
                    raise CacheEntryError(entry, f"{name} does not match its sha256 (changed since written)")
        try:
            rows = json.loads((entry / INDEX_FILE).read_text())
            feats = np.load(entry / FEATURES_FILE, mmap_mode="r")
        except Exception as err:  # EOFError (0 bytes), ValueError (truncated), OSError, ...
            raise CacheEntryError(entry, f"unreadable ({type(err).__name__}: {err})") from None
        if (
            feats.dtype != np.float16
            or list(feats.shape) != meta.get("shape")
            or not isinstance(rows, list)
            or len(rows) != feats.shape[0]
        ):
            raise CacheEntryError(
                entry,
                f"inconsistent entry (features {feats.dtype} {list(feats.shape)}, meta shape "
                f"{meta.get('shape')}, {len(rows)} index rows)",
            )
        if expect_paths is not None and (why := _misaligned(rows, expect_paths)):
            raise CacheEntryError(entry, why)
        return CachedFeatures(key, entry, feats, rows, meta)

    def get_or_compute(
        self,
        key_parts: Mapping[str, Any],
        compute: Callable[[], FeatureSource],
        expect_paths: Sequence[str | os.PathLike[str]] | None = None,
    ) -> CachedFeatures:
        """The entry for ``key_parts``, checked as ``load`` checks it (``expect_paths``: the record paths
        the caller pairs with the rows, in order). On a miss ``compute()`` (arrays or a FeatureStream) is
        written first; a damaged entry is reported (a warning naming it and why) and rebuilt. A compute
        that raises leaves nothing behind."""
        key = self.key(**key_parts)
        if self.path(key).exists():
            try:
                entry = self.load(key, expect_paths)
            except CacheEntryError as err:
                log.warning("feature cache: damaged entry %s (%s): rebuilding it", err.path, err.reason)
                self._discard(self.path(key))
                self.rebuilt += 1
            else:
                self.hits += 1
                return entry
        self.misses += 1
        self.root.mkdir(parents=True, exist_ok=True)
        # a fresh unique name, not mkdtemp: its 0700 mode would stick to the published entry
        tmp = self.root / f"{_TMP_PREFIX}{key[:16]}-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()  # the umask's mode, like every other folder
        try:
            shape, rows = _write_entry(tmp, compute())
            if expect_paths is not None and (why := _misaligned(rows, expect_paths)):
                raise ValueError(f"feature source does not follow the records it was given: {why}")
            index_text = json.dumps(rows, indent=1)
            atomic_write_text(tmp / INDEX_FILE, index_text)
            nbytes = (tmp / FEATURES_FILE).stat().st_size
            meta = {
                "key": key,
                "key_parts": describe(dict(key_parts)),
                "format_version": FORMAT_VERSION,
                "shape": list(shape),
                "dtype": "float16",
                "n_items": shape[0],
                "bytes": nbytes,
                # read back from disk: the checksum covers what a later run will read
                "sha256": {
                    FEATURES_FILE: file_sha256(tmp / FEATURES_FILE),
                    INDEX_FILE: hashlib.sha256(index_text.encode()).hexdigest(),
                },
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            atomic_write_text(tmp / META_FILE, json.dumps(meta, indent=1))  # last: marks a complete entry
            self._publish(tmp, key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.bytes_written += nbytes
        return self.load(key, expect_paths, verify=False)  # checksummed from disk just above

    def _publish(self, tmp: Path, key: str) -> None:
        """Rename the finished folder into place (one atomic step)."""
        target = self.path(key)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.exists():
                raise
            try:  # a concurrent writer finished first: keep its entry if it is sound
                self.load(key)
            except CacheEntryError:
                self._discard(target)
                os.rename(tmp, target)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        fsync_dir(self.root)

    def _discard(self, entry: Path) -> None:
        """Move a damaged entry aside in one rename (no reader sees it half-deleted), then delete it."""
        aside = self.root / f"{_TMP_PREFIX}damaged-{entry.name[:16]}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(entry, aside)
        except FileNotFoundError:
            return  # a concurrent run discarded it first
        if aside.is_dir():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)

    # bookkeeping
    def _published(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """(folder, meta) of every published entry whose meta.json reads (damaged ones are reported
        and rebuilt when a run asks for them, not here)."""
        if not self.root.is_dir():
            return
        for d in sorted(self.root.iterdir()):
            if d.name.startswith(_TMP_PREFIX) or not (d / META_FILE).is_file():
                continue
            try:
                yield d, json.loads((d / META_FILE).read_text())
            except (OSError, ValueError):
                continue

    def entries(self) -> list[dict[str, Any]]:
        """meta.json of every published entry."""
        return [meta for _, meta in self._published()]

    def size_bytes(self) -> int:
        """Bytes held by published entries (features + index + meta)."""
        return sum(f.stat().st_size for d, _ in self._published() for f in d.iterdir() if f.is_file())

    def stats(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "rebuilt": self.rebuilt,
            "bytes_written": self.bytes_written,
            "entries": len(self.entries()),
            "size_bytes": self.size_bytes(),
        }

    def remove_stale(self, older_than_s: float = 3600.0) -> int:
        """Delete temporary folders of interrupted writes older than ``older_than_s``; returns how many.
        (They are never loaded either way: this only reclaims disk.)"""
        if not self.root.is_dir():
            return 0
        now, removed = time.time(), 0
        for d in self.root.glob(f"{_TMP_PREFIX}*"):
            if now - d.stat().st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed


def _write_entry(folder: Path, source: FeatureSource) -> tuple[tuple[int, ...], list[IndexRow]]:
    if isinstance(source, FeatureStream):
        n_items, s_max, chunks = source.n_items, source.max_clips, source.chunks
    else:
        feats, rows = source
        if feats.ndim != 4 or len(rows) != feats.shape[0]:
            raise ValueError(
                f"features must be [n_items, S, N, D] with one index row per item, got {feats.shape} "
                f"and {len(rows)} rows"
            )
        n_items, s_max, chunks = feats.shape[0], feats.shape[1], [(feats, list(rows))]
    out: np.memmap | None = None
    all_rows: list[IndexRow] = []
    for chunk, chunk_rows in chunks:
        if chunk.ndim != 4 or chunk.shape[0] != len(chunk_rows) or chunk.shape[1] > s_max:
            raise ValueError(
                f"bad feature chunk {chunk.shape} with {len(chunk_rows)} rows (max clips {s_max})"
            )
        if out is None:  # tokens and width are known only once the backbone has run
            out = np.lib.format.open_memmap(
                folder / FEATURES_FILE, mode="w+", dtype=np.float16, shape=(n_items, s_max, *chunk.shape[2:])
            )
        start = len(all_rows)
        if start + chunk.shape[0] > n_items:
            raise ValueError(f"feature source yielded more than the announced {n_items} items")
        out[start : start + chunk.shape[0], : chunk.shape[1]] = chunk.astype(np.float16, copy=False)
        all_rows.extend(chunk_rows)
    if out is None or len(all_rows) != n_items:
        raise ValueError(f"feature source yielded {len(all_rows)} items, announced {n_items}")
    out.flush()
    shape = tuple(out.shape)
    del out
    with open(folder / FEATURES_FILE, "rb+") as f:
        os.fsync(f.fileno())
    return shape, all_rows
