"""Frozen features, extracted once and cached on disk.

An entry holds the backbone tokens of every item (video) of one dataset split under one condition:

    <root>/<key>/features.npy   float16 [n_items, S, N, D], opened memory-mapped (S = max clips per item;
                                items with fewer clips are zero-padded, see ``num_clips``)
    <root>/<key>/index.json     one row per item: record, path, patient, study, view, labels, num_clips
    <root>/<key>/meta.json      the key parts, shape, bytes, creation time

The key is a sha256 over the canonical JSON of its parts: backbone identity (kind + config + weights
digest), dataset identity (format, root, sorted record paths with sizes and mtimes), clip spec,
transform, degradation (name, parameters, seed), split, clip mode, pooling, and the augmentation view
index. Changing any part gives a new key, hence a new entry: nothing is ever overwritten or reused
across conditions. Entries are written into a temporary folder and renamed into place when complete,
so a run killed half-way (or a compute that raises) leaves no entry that a later run could load.

Training-time augmentation with a cache: the train split is cached ``aug_views`` times, each with a
training transform (random clip start, random resized crop) and its own key part ``aug_view=v``; view
``v`` draws its randomness as epoch ``v`` of the VideoClipDataset (``dataset[(index, v)]``), so views
differ from each other but each is reproducible. The probe trainer then uses one cached view per epoch
(``aug_view_for_epoch``: a seeded shuffle of the views, repeated). Validation and test splits use one
deterministic view (``aug_view=None``, eval transform, centre/all clips).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
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

FORMAT_VERSION = 1
FEATURES_FILE, INDEX_FILE, META_FILE = "features.npy", "index.json", "meta.json"
_TMP_PREFIX = ".tmp-"
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
    """Format, root and every record's path, size and mtime (sorted by path): a re-encoded or replaced
    video changes the identity."""
    files = []
    for r in sorted(records, key=lambda r: str(r.path)):
        st = Path(r.path).stat()
        files.append([str(r.path), st.st_size, st.st_mtime_ns])
    digest = hashlib.sha256(canonical_json(files).encode()).hexdigest()
    return {"format": format, "root": str(root), "n_records": len(files), "files_sha256": digest}


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
    would produce: backbone identity, dataset identity, clip spec, clip mode, transform, degradation
    (name, parameters, seed), split, aug view and pooling."""
    return {
        "backbone": backbone.identity(),
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


class FeatureCache:
    """Content-addressed store of extracted features under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
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
        return (self.path(key) / META_FILE).is_file()

    # reading
    def load(self, key: str) -> CachedFeatures:
        """Open a complete entry (memory-mapped); a missing or inconsistent entry raises ValueError."""
        entry = self.path(key)
        if not self.contains(key):
            raise ValueError(f"no feature cache entry {key} under {self.root}")
        try:
            meta = json.loads((entry / META_FILE).read_text())
            rows = json.loads((entry / INDEX_FILE).read_text())
            feats = np.load(entry / FEATURES_FILE, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise ValueError(f"{entry}: unreadable feature cache entry ({err})") from err
        if feats.dtype != np.float16 or list(feats.shape) != meta["shape"] or len(rows) != feats.shape[0]:
            raise ValueError(
                f"{entry}: inconsistent entry (features {feats.dtype} {list(feats.shape)}, meta shape "
                f"{meta['shape']}, {len(rows)} index rows)"
            )
        return CachedFeatures(key, entry, feats, rows, meta)

    def get_or_compute(
        self, key_parts: Mapping[str, Any], compute: Callable[[], FeatureSource]
    ) -> CachedFeatures:
        """The entry for ``key_parts``; on a miss, ``compute()`` (arrays or a FeatureStream) is written
        atomically first. A compute that raises leaves nothing behind."""
        key = self.key(**key_parts)
        if self.contains(key):
            self.hits += 1
            return self.load(key)
        self.misses += 1
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{key[:16]}-", dir=self.root))
        try:
            shape, rows = _write_entry(tmp, compute())
            nbytes = (tmp / FEATURES_FILE).stat().st_size
            meta = {
                "key": key,
                "key_parts": describe(dict(key_parts)),
                "format_version": FORMAT_VERSION,
                "shape": list(shape),
                "dtype": "float16",
                "n_items": shape[0],
                "bytes": nbytes,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            _write_json(tmp / INDEX_FILE, rows)
            _write_json(tmp / META_FILE, meta)  # written last: its presence marks a complete entry
            _fsync_dir(tmp)
            try:
                os.rename(tmp, self.path(key))
            except OSError:
                if not self.contains(key):  # not a concurrent writer that finished first
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.bytes_written += nbytes
        return self.load(key)

    # bookkeeping
    def entries(self) -> list[dict[str, Any]]:
        """meta.json of every complete entry."""
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            if not d.name.startswith(_TMP_PREFIX) and (d / META_FILE).is_file():
                out.append(json.loads((d / META_FILE).read_text()))
        return out

    def size_bytes(self) -> int:
        """Bytes held by complete entries (features + index + meta)."""
        total = 0
        for meta in self.entries():
            total += sum(f.stat().st_size for f in self.path(meta["key"]).iterdir() if f.is_file())
        return total

    def stats(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
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


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
