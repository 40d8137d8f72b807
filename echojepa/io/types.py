"""Types shared by every decoder: what a decoded echo video looks like to the rest of the suite.

Nothing here carries patient identifiers: `VideoInfo.meta` holds only acquisition facts
(vendor-neutral, non-identifying) so it can be printed, logged and tracked safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["cine", "still", "doppler"]


class VideoReadError(Exception):
    """A file could not be decoded. The message always names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotACineError(VideoReadError):
    """The file decodes but is a still image or a Doppler spectrum, not a B-mode cine."""

    def __init__(self, path: str, kind: Kind, reason: str = "") -> None:
        self.kind = kind
        super().__init__(path, reason or f"not a cine (kind={kind})")


@dataclass(frozen=True)
class Region:
    """A pixel box in the source frame, half-open: rows y0:y1, columns x0:x1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


@dataclass
class VideoInfo:
    """What a file holds, read without decoding every frame.

    `height`/`width` are those of the frames the reader returns (after any region crop);
    `region` is the crop box in source pixels (None when the whole frame is used).
    """

    path: str
    format: str  # "avi" | "mp4" | "dicom" | other container name
    kind: Kind
    frames: int
    fps: float
    height: int
    width: int
    region: Region | None = None
    fps_source: str = "container"  # "container" | "FrameTime" | "CineRate" | "default"
    meta: dict = field(default_factory=dict)  # non-identifying acquisition facts only

    def to_json(self) -> dict:
        return {
            "frames": self.frames,
            "fps": self.fps,
            "height": self.height,
            "width": self.width,
            "format": self.format,
            "kind": self.kind,
            "region": self.region.as_list() if self.region else None,
        }


@dataclass
class DecodedVideo:
    """Decoded frames of one file: uint8 RGB `[T, H, W, 3]` plus what is known about them."""

    frames: np.ndarray  # [T, H, W, 3] uint8
    info: VideoInfo
    frame_indices: np.ndarray  # [T] source frame index of each returned frame
    mask: np.ndarray | None = None  # [H, W] bool sector (fan) mask, True inside the cone

    @property
    def fps(self) -> float:
        return self.info.fps
