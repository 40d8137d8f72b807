"""Reading a weights file a user points at: weights-only, one line naming the file when it is wrong.

Every loader of user-supplied ``.pt`` / ``.ckpt`` files (backbones, released checkpoints, probe
checkpoints, model bundles, training resumes) goes through ``read_weights_file``, so a missing, empty,
truncated, code-carrying or non-dict file is reported the same way everywhere, and torch's advice to
retry with ``weights_only=False`` is never passed on.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["WeightsFileError", "read_weights_file", "weights_file_problem"]


class WeightsFileError(ValueError):
    """A weights file that cannot be used; the message is one line naming the file and the reason."""


def weights_file_problem(path: str | os.PathLike[str], mmap: bool = False) -> tuple[str | None, Any]:
    """(why ``path`` cannot be read weights-only, or None; what it holds). The reason is short, for a
    one-line message after the file name. With ``mmap`` tensors stay memory-mapped, so checking a
    checkpoint of any size reads only its pickled structure (needs the zip format of torch >= 1.6)."""
    import torch  # local: keep `echojepa.io` importable without paying for torch where it is not needed

    path = Path(path)
    if not path.exists():
        return "file not found", None
    if not path.is_file():
        return "path is not a file", None
    if path.stat().st_size == 0:
        return "file is empty (0 bytes)", None
    if mmap and not zipfile.is_zipfile(path):
        return "file is not a readable torch file (truncated, corrupt or another format)", None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        return (
            "file refused: it holds Python objects besides tensors and plain data, so it is not a plain "
            "weights file"
        ), None
    except Exception as exc:  # zip, pickle and storage errors alike: the bytes are not a torch file
        return (
            f"file is not a readable torch file (truncated, corrupt or another format: {type(exc).__name__})"
        ), None
    return None, obj


def read_weights_file(
    path: str | os.PathLike[str],
    what: str = "weights",
    error: type[Exception] = WeightsFileError,
    mmap: bool = False,
) -> dict[str, Any]:
    """``torch.load(path, map_location='cpu', weights_only=True)`` as a dict; ``error(one line)`` when the
    file is missing, not a file, empty, truncated or corrupt, needs code to unpickle, or is not a dict."""
    problem, obj = weights_file_problem(path, mmap=mmap)
    if problem:
        raise error(f"{path}: {what} {problem}")
    if not isinstance(obj, Mapping):
        raise error(f"{path}: {what} file holds a {type(obj).__name__}, expected a dict")
    return dict(obj)
