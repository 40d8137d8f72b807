"""Decoded videos kept between the feature passes of a probe evaluation (evaluate.yaml ``frame_cache``).

Every backbone of a comparison reads the same videos with the same clips, and each feature pass decoded
them again (JPEG + YBR for DICOM, MJPEG for AVI). With this cache the first pass stores each video's
decoded frames once (echojepa.data.clipcache: uint8, memory-mapped, keyed by file and decoder source,
checked on load) and every later pass, for any backbone, reads them.

``short_side: null`` stores frames exactly as decoded, so a cached pass hands the backbone the same
pixels as an uncached one, to the bit: the feature cache keys do not change and neither does any
result. A ``short_side`` shrinks the stored frames (less disk for full-resolution DICOM); the features
then differ from an uncached pass, so their cache key names the stored size (echojepa.probe.feature_keys).

Passes that need each video's sector mask (a degradation, or a backbone whose preprocessing masks the
sector) read the files as before: an entry keeps no mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from echojepa.confkeys import parse
from echojepa.data.clipcache import ClipCache
from echojepa.data.datasets import DatasetError
from echojepa.probe.config import FrameCacheConfig
from echojepa.probe.errors import ProbeInputError


def build_frame_cache(raw: Mapping[str, Any] | None) -> ClipCache | None:
    """The cache of evaluate.yaml's ``frame_cache`` block, or None when it is absent or disabled."""
    cfg = parse(FrameCacheConfig, raw or {}, "frame_cache")
    if not cfg.enabled:
        return None
    if not cfg.dir:
        raise ProbeInputError("frame_cache.dir: enabled without a folder")
    try:
        return ClipCache(
            cfg.dir,
            short_side=cfg.short_side,
            max_gb=cfg.max_gb,
            open_entries=cfg.open_entries,
            decode_chunk=cfg.decode_chunk,
        )
    except DatasetError as exc:  # an unwritable folder: one line naming it
        raise ProbeInputError(f"frame_cache.dir: {exc}") from None
    except ValueError as exc:  # short_side, open_entries or decode_chunk below 1
        raise ProbeInputError(f"frame_cache: {exc}") from None
