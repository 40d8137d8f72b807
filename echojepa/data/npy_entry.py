"""One verified uint8 array on disk: ``<name>.npy`` and its ``<name>.json`` (key, shape, crc32).

The store format shared by the decoded-video cache (echojepa.data.clipcache) and the decoded online-probe
subsets (echojepa.data.subset_store). Both files are written atomically, the JSON last, so an entry
without its JSON does not exist. Reading checks the JSON's key against the one asked for, the array's
dtype and shape against the recorded ones, and the crc32 of its bytes; any mismatch is an EntryError
that names the file, for the caller to report and rebuild.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from echojepa.io.atomic import atomic_write, atomic_write_text


class EntryError(Exception):
    """An entry on disk that is unreadable, for another key, or damaged."""


def read_entry(npy: Path, meta_path: Path, key: dict[str, Any], mmap: bool = True) -> tuple[np.ndarray, dict]:
    """The verified array (memory-mapped read-only when `mmap`) and the entry's metadata."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EntryError(f"{meta_path}: unreadable entry metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise EntryError(f"{meta_path}: metadata does not match the entry's key")
    try:
        array = np.load(npy, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise EntryError(f"{npy}: unreadable array ({exc})") from None
    if array.dtype != np.uint8 or list(array.shape) != meta.get("shape"):
        raise EntryError(
            f"{npy}: array {array.dtype} {list(array.shape)} differs from the recorded "
            f"uint8 {meta.get('shape')}"
        )
    if zlib.crc32(array.reshape(-1)) != meta.get("crc32"):
        raise EntryError(f"{npy}: array does not match its crc32 (damaged)")
    return array, meta


def write_entry(npy: Path, meta_path: Path, array: np.ndarray, key: dict[str, Any], **extra: Any) -> None:
    """Store `array` (uint8) under `key`, with `extra` fields in the metadata."""
    if array.dtype != np.uint8:
        raise ValueError(f"entries hold uint8 arrays, got {array.dtype}")
    atomic_write(npy, lambda f: np.save(f, array, allow_pickle=False))
    meta = {"key": key, "shape": list(array.shape), **extra, "crc32": zlib.crc32(array.reshape(-1))}
    atomic_write_text(meta_path, json.dumps(meta, indent=1))  # last: the entry exists from here on


def remove_entry(npy: Path, meta_path: Path) -> None:
    npy.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
