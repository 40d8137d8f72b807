"""Decoding and writing echo video files: one entry point whatever the format (AVI/MP4 or DICOM)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from echojepa.io.dicom import UltrasoundRegion, dicom_info, is_dicom, read_dicom
from echojepa.io.dicom_writer import write_dicom
from echojepa.io.sector import estimate_sector_mask, sample_indices
from echojepa.io.types import DecodedVideo, NotACineError, Region, VideoInfo, VideoReadError
from echojepa.io.video import CONTAINER_SUFFIXES, container_info, read_container, write_video

__all__ = [
    "DecodedVideo",
    "NotACineError",
    "Region",
    "UltrasoundRegion",
    "VideoInfo",
    "VideoReadError",
    "estimate_sector_mask",
    "read_video",
    "video_info",
    "write_dicom",
    "write_video",
]


def _format_of(path: Path) -> str:
    if not path.exists():
        raise VideoReadError(str(path), "file not found")
    if path.is_dir():
        raise VideoReadError(str(path), "is a directory, not a video file")
    suffix = path.suffix.lower()
    if suffix in CONTAINER_SUFFIXES:
        return "container"
    if is_dicom(path):
        return "dicom"
    raise VideoReadError(str(path), f"unsupported format (suffix {suffix or 'none'!r}, no DICM magic)")


def video_info(path: str | os.PathLike) -> VideoInfo:
    """What a video file holds (frames, fps, size, kind, crop region) without decoding every frame."""
    p = Path(path)
    return dicom_info(p) if _format_of(p) == "dicom" else container_info(p)


def read_video(
    path: str | os.PathLike,
    frame_indices: Sequence[int] | None = None,
    *,
    allow_non_cine: bool = False,
    estimate_mask: bool = False,
) -> DecodedVideo:
    """Decode `frame_indices` (all frames when None) as uint8 RGB [T, H, W, 3].

    DICOM results always carry a fan mask; for containers `estimate_mask=True` estimates one from a fixed
    sample of frames (the same mask for every clip of a file). Stills and Doppler raise NotACineError
    unless `allow_non_cine`.
    """
    p = Path(path)
    if _format_of(p) == "dicom":
        return read_dicom(p, frame_indices, allow_non_cine=allow_non_cine)
    video = read_container(p, frame_indices, allow_non_cine=allow_non_cine)
    if estimate_mask:
        video.mask = _container_mask(p, video.info)
    return video


def _container_mask(path: Path, info: VideoInfo) -> np.ndarray:
    sample = read_container(path, sample_indices(info.frames), allow_non_cine=True, info=info)
    return estimate_sector_mask(sample.frames)
