"""Reading a weights file a user points at: weights-only, one line naming the file when it is wrong.

Every loader of user-supplied ``.pt`` / ``.ckpt`` files (backbones, released checkpoints, probe
checkpoints, model bundles, training resumes) goes through ``read_weights_file``, so a missing, empty,
truncated, code-carrying or non-dict file is reported the same way everywhere, and torch's advice to
retry with ``weights_only=False`` is never passed on.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["WeightsFileError", "read_weights_file"]


class WeightsFileError(ValueError):
    """A weights file that cannot be used; the message is one line naming the file and the reason."""


def read_weights_file(
    path: str | os.PathLike[str],
    what: str = "weights",
    error: type[Exception] = WeightsFileError,
) -> dict[str, Any]:
    """``torch.load(path, map_location='cpu', weights_only=True)`` as a dict; ``error(one line)`` when the
    file is missing, not a file, empty, truncated or corrupt, needs code to unpickle, or is not a dict."""
    import torch  # local: keep `echojepa.io` importable without paying for torch where it is not needed

    path = Path(path)
    if not path.exists():
        raise error(f"{path}: {what} file not found")
    if not path.is_file():
        raise error(f"{path}: {what} path is not a file")
    if path.stat().st_size == 0:
        raise error(f"{path}: {what} file is empty (0 bytes)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise error(
            f"{path}: {what} file refused: it holds Python objects besides tensors and plain data, so it "
            "is not a plain weights file"
        ) from exc
    except Exception as exc:  # zip, pickle and storage errors alike: the bytes are not a torch file
        raise error(
            f"{path}: {what} file is not a readable torch file (truncated, corrupt or another format: "
            f"{type(exc).__name__})"
        ) from exc
    if not isinstance(obj, Mapping):
        raise error(f"{path}: {what} file holds a {type(obj).__name__}, expected a dict")
    return dict(obj)
