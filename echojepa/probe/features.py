"""Frozen features, extracted once and cached on disk.

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

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from echojepa.data.clips import sample_clip_indices
from echojepa.data.index import Record
from echojepa.data.torchdata import VideoClipDataset, collate_clips, worker_init
from echojepa.io.atomic import atomic_write_text, fsync_dir

log = logging.getLogger(__name__)

# 2: rows keyed in record order, code version in the key, sha256 checksums in meta.json
FORMAT_VERSION = 2
FEATURES_FILE, INDEX_FILE, META_FILE = "features.npy", "index.json", "meta.json"
_TMP_PREFIX = ".tmp-"
_HASH_CHUNK = 1 << 24  # bytes read per step when checksumming an entry
POOLING = ("tokens", "mean")

IndexRow = dict[str, Any]


# ----- canonical descriptions (what goes into a key) ---------------------------------------------------
def describe(obj: Any) -> Any:
    """A JSON-able, deterministic description of a config-like object (dataclasses, transforms,
    tensors, paths...): the object's type and its public state, recursively."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return describe(obj.item())
    if isinstance(obj, Tensor | np.ndarray):
        return describe(np.asarray(obj.detach().float().cpu() if isinstance(obj, Tensor) else obj).tolist())
    if isinstance(obj, Mapping):
        return {str(k): describe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [describe(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: describe(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {"type": type(obj).__qualname__, **fields}
    if hasattr(obj, "__dict__"):
        state = {k: describe(v) for k, v in vars(obj).items() if not k.startswith("_")}
        return {"type": type(obj).__qualname__, **state}
    raise TypeError(f"cannot describe {type(obj).__name__} for a cache key")


def canonical_json(obj: Any) -> str:
    return json.dumps(describe(obj), sort_keys=True, separators=(",", ":"))


def dataset_identity(records: Sequence[Record], format: str, root: str | os.PathLike[str]) -> dict[str, Any]:
    """Format, root and every record's path, size and mtime, in record order: a re-encoded or replaced
    video changes the identity, and so does a re-ordered file list (an entry's row i is record i)."""
    files = []
    for r in records:
        st = Path(r.path).stat()
        files.append([str(r.path), st.st_size, st.st_mtime_ns])
    digest = hashlib.sha256(canonical_json(files).encode()).hexdigest()
    return {"format": format, "root": str(root), "n_records": len(files), "files_sha256": digest}


# ----- code version (the part of a key that configuration cannot see) -----------------------------------
# A hash of the source, not a constant a maintainer bumps: a forgotten bump would silently serve features
# of the old code, while a hash only costs a re-extraction after an edit (comments included) of a module
# that feeds the features. Which modules: those defining the classes of the backbone (every submodule)
# and of the dataset / transform / degradation, this module, and every echojepa module they import,
# transitively (decoding, clip sampling, model code).
_CODE_PACKAGE = "echojepa"


def _ours(name: object) -> bool:
    return isinstance(name, str) and (name == _CODE_PACKAGE or name.startswith(_CODE_PACKAGE + "."))


def _imports(module: types.ModuleType) -> set[str]:
    """The echojepa modules whose objects ``module`` holds at module level (what it imports)."""
    out = set()
    for value in list(vars(module).values()):
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if _ours(name) and name in sys.modules:
            out.add(name)
    return out


@functools.cache
def _closure(roots: frozenset[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    todo = [r for r in roots if r in sys.modules]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_imports(sys.modules[name]) - seen)
    return tuple(sorted(seen))


@functools.cache
def _source_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def code_modules(*objects: Any) -> list[str]:
    """The echojepa modules whose source shapes the features of ``objects`` (backbone, dataset, ...)."""
    roots = {__name__}
    for obj in objects:
        parts = obj.modules() if isinstance(obj, torch.nn.Module) else [obj]
        for part in parts:
            roots.update(c.__module__ for c in type(part).__mro__ if _ours(c.__module__))
    return list(_closure(frozenset(roots)))


def code_version(*objects: Any) -> str:
    """sha256 over the source of ``code_modules(*objects)`` (by module name, so a clone elsewhere shares
    the cache)."""
    sources = {}
    for name in code_modules(*objects):
        file = getattr(sys.modules[name], "__file__", None)
        sources[name] = _source_sha256(file) if file else None
    return hashlib.sha256(canonical_json(sources).encode()).hexdigest()


def feature_key_parts(
    backbone: Any,
    dataset: VideoClipDataset,
    *,
    format: str,
    root: str | os.PathLike[str],
    split: str,
    aug_view: int | None = None,
    pool: str = "tokens",
    degradation_name: str | None = None,
) -> dict[str, Any]:
    """Every key part of the features ``stream_features(backbone, dataset, aug_view=..., pool=...)``
    would produce: backbone identity, code version, dataset identity, clip spec, clip mode, transform,
    degradation (name, parameters, seed), split, aug view and pooling."""
    return {
        "backbone": backbone.identity(),
        "code": code_version(backbone, dataset, dataset.transform, dataset.degradation),
        "dataset": dataset_identity(dataset.records, format, root),
        "clip": dataset.spec,
        "mode": dataset.mode,
        "transform": dataset.transform,
        "degradation": {"name": degradation_name, "params": dataset.degradation, "seed": dataset.seed},
        "split": split,
        "aug_view": aug_view,
        "pool": pool,
    }


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


# ----- extraction ---------------------------------------------------------------------------------------
@dataclass
class FeatureStream:
    """Features produced batch by batch, so an entry never has to fit in memory: ``chunks`` yields
    (features [b, S_b <= max_clips, N, D], rows) in item order; the writer pads S to ``max_clips``."""

    n_items: int
    max_clips: int
    chunks: Iterable[tuple[np.ndarray, list[IndexRow]]]


def max_clips(dataset: VideoClipDataset) -> int:
    """Most clips any item yields: the segment count, or in mode "all" the longest video's window count
    (index arithmetic on probed frame counts, nothing is decoded)."""
    if dataset.mode != "all":
        return dataset.spec.segments
    most = 1
    for i in range(len(dataset)):
        frames, fps = dataset.frame_info(i)
        most = max(most, len(sample_clip_indices(frames, fps, dataset.spec, None, "all")))
    return most


def _row(dataset: VideoClipDataset, index: int, num_clips: int) -> IndexRow:
    r = dataset.records[index]
    return {
        "record": index,
        "path": str(r.path),
        "patient": r.patient,
        "study": r.study,
        "view": r.view,
        "labels": dict(r.labels),
        "num_clips": int(num_clips),
    }


def _to_float16(x: Tensor, what: str) -> np.ndarray:
    with np.errstate(over="ignore"):  # overflow is detected (and refused) just below
        out = x.detach().float().cpu().numpy().astype(np.float16)
    if not np.isfinite(out).all():
        raise ValueError(f"{what}: features are not finite in float16 (overflow or NaN from the backbone)")
    return out


def stream_features(
    backbone: torch.nn.Module,
    dataset: VideoClipDataset,
    batch_size: int,
    device: str | torch.device = "cpu",
    progress: bool = True,
    aug_view: int | None = None,
    pool: str = "tokens",
    num_workers: int = 0,
    autocast_dtype: torch.dtype | None = None,
) -> FeatureStream:
    """Run ``backbone`` over every item of ``dataset`` (in order), ``batch_size`` items per step.

    ``aug_view`` selects the dataset epoch whose randomness is used (None: the dataset's own epoch).
    ``pool="mean"`` keeps one mean-pooled token per clip instead of all tokens.
    """
    if pool not in POOLING:
        raise ValueError(f"pool must be one of {POOLING}, got {pool!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    epoch = dataset.epoch if aug_view is None else int(aug_view)
    n, s_max = len(dataset), max_clips(dataset)
    name = getattr(backbone, "name", type(backbone).__name__)

    def chunks() -> Iterator[tuple[np.ndarray, list[IndexRow]]]:
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=[(i, epoch) for i in range(n)],
            collate_fn=collate_clips,
            num_workers=num_workers,
            worker_init_fn=worker_init if num_workers else None,
        )
        backbone.to(device).eval()
        bar = _progress(progress)
        with bar:
            task = bar.add_task(f"features {name}", total=n)
            for batch in loader:
                video, present = batch["video"], batch["clip_mask"]  # [B, S, C, T, H, W], [B, S]
                clips = video[present].to(device, non_blocking=True)  # [sum S_b, C, T, H, W]
                with (
                    torch.no_grad(),
                    torch.autocast(
                        torch.device(device).type, dtype=autocast_dtype, enabled=autocast_dtype is not None
                    ),
                ):
                    tokens = backbone(clips)  # [sum S_b, N, D]
                if pool == "mean":
                    tokens = tokens.mean(dim=1, keepdim=True)  # [sum S_b, 1, D]
                out = tokens.new_zeros((*present.shape, *tokens.shape[1:]), dtype=torch.float32)
                out[present.to(tokens.device)] = tokens.float()  # [B, S, N, D]
                rows = [_row(dataset, int(i), int(c)) for i, c in zip(batch["index"], batch["num_clips"])]
                yield _to_float16(out, f"backbone {name}, items {rows[0]['path']}..."), rows
                bar.advance(task, len(rows))

    return FeatureStream(n_items=n, max_clips=s_max, chunks=chunks())


def extract_features(
    backbone: torch.nn.Module,
    dataset: VideoClipDataset,
    batch_size: int,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **kwargs: Any,
) -> tuple[np.ndarray, list[IndexRow]]:
    """All features in memory: float16 [n_items, S, N, D] and one index row per item (see
    ``stream_features`` for the options). For big runs pass a stream to ``FeatureCache.get_or_compute``."""
    stream = stream_features(backbone, dataset, batch_size, device, progress, **kwargs)
    feats: list[np.ndarray] = []
    rows: list[IndexRow] = []
    for chunk, chunk_rows in stream.chunks:
        pad = stream.max_clips - chunk.shape[1]
        feats.append(np.pad(chunk, [(0, 0), (0, pad), (0, 0), (0, 0)]) if pad else chunk)
        rows.extend(chunk_rows)
    if not feats:
        raise ValueError("extract_features: the dataset is empty")
    return np.concatenate(feats), rows


def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


# ----- the cache ------------------------------------------------------------------------------------------
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
