"""What a feature cache key is made of: canonical descriptions of config-like objects, the dataset's
identity, and the code version (a hash of the source of every module that shapes the features).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from echojepa.data.index import Record
from echojepa.data.torchdata import VideoClipDataset
from echojepa.probe.feature_extraction import stream_features


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


# A hash of the source, not a constant a maintainer bumps: a forgotten bump would silently serve features
# of the old code, while a hash only costs a re-extraction after an edit (comments included) of a module
# that feeds the features. Which modules: those defining the classes of the backbone (every submodule)
# and of the dataset / transform / degradation, this module and the extraction module, and every echojepa
# module they import, transitively (decoding, clip sampling, model code).
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
    roots = {__name__, stream_features.__module__}  # these keys and the extraction itself
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
    precision: str = "32-true",
) -> dict[str, Any]:
    """Every key part of the features ``stream_features(backbone, dataset, aug_view=..., pool=...)``
    would produce: backbone identity, code version, dataset identity, clip spec, clip mode, transform,
    degradation (name, parameters, seed), split, aug view and pooling; the backbone's autocast precision
    when it is not float32 (float32 entries keep their earlier keys); and the stored size of the dataset's
    frame cache when it shrinks frames (echojepa.probe.frame_store: one that stores frames as decoded
    gives the file's pixels, so it is no part of the key and shares the uncached entries)."""
    parts = {
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
    if precision != "32-true":
        parts["precision"] = precision
    frames = dataset.frame_cache
    if frames is not None and frames.short_side is not None:
        parts["frames"] = {"short_side": frames.short_side, "interpolation": frames.interpolation}
    return parts
