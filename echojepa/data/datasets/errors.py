"""Bad rows: the `DatasetError` every reader raises, and the `on_error` policy that raises or skips.

Bad rows raise `DatasetError` (a ValueError naming the file and the reason) by default; with
`on_error="skip"` they are left out, logged and counted in `DatasetIndex.skipped`. No row is ever
replaced by another one.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A dataset table or file is unusable. The message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class Issues:
    """Applies the `on_error` policy: raise on the first bad row, or skip, log and count it."""

    def __init__(self, on_error: str) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.skipped: list[tuple[str, str]] = []

    def bad(self, path: str | Path, reason: str) -> None:
        """A bad row: raised as a `DatasetError`, or (with `on_error="skip"`) logged and counted."""
        if self.on_error == "raise":
            raise DatasetError(path, reason)
        log.warning("skipped %s: %s", path, reason)
        self.skipped.append((str(path), reason))

    def exclude(self, path: str | Path, reason: str) -> None:
        """An expected exclusion (not an error): always counted, never raised."""
        log.info("excluded %s: %s", path, reason)
        self.skipped.append((str(path), reason))
