"""Which source frames make up a clip: pure index arithmetic, no decoding.

A clip is `frames` indices spaced `step` apart (its span is `(frames - 1) * step + 1` source frames).
The step comes from `frame_step`, or from `target_fps` when given (`step = max(1, round(fps / target_fps))`),
so videos recorded at different frame rates yield clips covering similar durations.

Short videos (fewer frames than one span) are padded by repeating the last frame index. EchoNet's
reference loader zero-pads instead; we repeat because a black frame is far out of distribution (after
normalisation it becomes a large constant, and for latent prediction it is a trivially predictable target),
whereas a held last frame looks like a paused cine and keeps the sector, speckle and anatomy in every
frame. It also means only real frames are ever decoded. A model trained on zero padding (EchoPrime) asks for
`pad="zero"`: the indices stay the same and `padded_positions` tells the loader which frames to zero
after normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ClipMode = Literal["random", "center", "all"]
CLIP_MODES: tuple[str, ...] = ("random", "center", "all")
CLIP_STARTS: tuple[str, ...] = ("spread", "first")
CLIP_PADS: tuple[str, ...] = ("repeat", "zero")


@dataclass(frozen=True)
class ClipSpec:
    """How to cut clips out of a video.

    `all_stride` (an extension) is the distance in source frames between consecutive clip starts in
    mode "all"; None means non-overlapping windows (stride = span).
    `start`: "spread" places the clips over the whole video (see sample_clip_indices); "first" starts
    the first clip at frame 0 and the others right after it, whatever the mode (a model that always
    saw the beginning of the video). `pad`: what fills a clip past the last frame ("repeat" the last
    frame, or "zero" frames; see the module docstring). `all_clips`: in mode "all", this many windows
    instead of every window (a model evaluated with a fixed number of test clips).
    """

    frames: int = 16
    frame_step: int | None = 2
    target_fps: float | None = None
    segments: int = 1
    all_stride: int | None = None
    start: str = "spread"
    pad: str = "repeat"
    all_clips: int | None = None

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"ClipSpec.frames must be >= 1, got {self.frames}")
        if self.segments < 1:
            raise ValueError(f"ClipSpec.segments must be >= 1, got {self.segments}")
        if self.target_fps is None and (self.frame_step is None or self.frame_step < 1):
            raise ValueError(
                f"ClipSpec needs frame_step >= 1 or a target_fps, got frame_step={self.frame_step}"
            )
        if self.target_fps is not None and not self.target_fps > 0:
            raise ValueError(f"ClipSpec.target_fps must be > 0, got {self.target_fps}")
        if self.all_stride is not None and self.all_stride < 1:
            raise ValueError(f"ClipSpec.all_stride must be >= 1, got {self.all_stride}")
        if self.start not in CLIP_STARTS:
            raise ValueError(f"ClipSpec.start must be one of {CLIP_STARTS}, got {self.start!r}")
        if self.pad not in CLIP_PADS:
            raise ValueError(f"ClipSpec.pad must be one of {CLIP_PADS}, got {self.pad!r}")
        if self.all_clips is not None and self.all_clips < 1:
            raise ValueError(f"ClipSpec.all_clips must be >= 1, got {self.all_clips}")

    def step(self, fps: float | None) -> int:
        """Source-frame step between consecutive clip frames for a video recorded at `fps`."""
        if self.target_fps is None:
            assert self.frame_step is not None  # guaranteed by __post_init__
            return self.frame_step
        if fps is None or not fps > 0:
            raise ValueError(f"target_fps={self.target_fps} needs the video's fps, got {fps}")
        return max(1, round(fps / self.target_fps))

    def span(self, fps: float | None) -> int:
        """Number of source frames one clip covers, first to last inclusive."""
        return (self.frames - 1) * self.step(fps) + 1


def _window(start: int, frames: int, step: int, n_frames: int) -> np.ndarray:
    idx = start + step * np.arange(frames, dtype=np.int64)
    return np.minimum(idx, n_frames - 1)  # pad short videos with the last frame


def _segment_starts(max_start: int, segments: int, mode: str, rng: np.random.Generator | None) -> np.ndarray:
    # Valid starts 0..max_start are split into `segments` equal (real-valued) bins; each segment draws
    # its start inside its own bin, so segments are spread evenly over the whole video.
    n_starts = max_start + 1
    width = n_starts / segments
    lo = np.arange(segments) * width
    if mode == "random":
        assert rng is not None
        starts = np.floor(lo + rng.random(segments) * width)
    else:
        starts = np.floor(lo + (width - 1) / 2)
    return np.clip(starts, 0, max_start).astype(np.int64)


def _all_starts(max_start: int, stride: int) -> np.ndarray:
    starts = list(range(0, max_start + 1, stride))
    if starts[-1] != max_start:
        starts.append(max_start)  # a final window flush with the end, so the tail is covered
    return np.asarray(starts, dtype=np.int64)


def _first_starts(max_start: int, count: int, span: int) -> np.ndarray:
    # From frame 0, each clip right after the previous one, held at the last valid start.
    return np.minimum(np.arange(count, dtype=np.int64) * span, max_start)


def sample_clip_indices(
    n_frames: int,
    fps: float | None,
    spec: ClipSpec,
    rng: np.random.Generator | None = None,
    mode: ClipMode = "random",
) -> np.ndarray:
    """Source frame indices of the clips to take from one video, `[S, spec.frames]` int64.

    mode "random": `spec.segments` clips, each with a random start inside its evenly spaced segment
    (needs `rng`; deterministic given it). "center": the same segments, each clip centred in its
    segment. "all": every window start 0, stride, 2*stride, ... plus one flush with the end, so the
    clips together cover the whole video (test-time "all clips" averaging); S varies per video.
    With `spec.all_clips` = K, mode "all" takes K windows instead (centred in K equal segments;
    repeated starts of a short video are taken once). With `spec.start` "first", clips start at
    frame 0 in every mode (see ClipSpec).
    Videos shorter than one span give clips padded with the last frame (see module docstring).
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"unknown clip mode {mode!r}; expected one of {CLIP_MODES}")
    if n_frames < 1:
        raise ValueError(f"cannot sample a clip from a video with {n_frames} frames")
    if mode == "random" and rng is None:
        raise ValueError("mode 'random' needs an explicit numpy Generator (rng) for reproducibility")
    step = spec.step(fps)
    span = spec.span(fps)
    max_start = max(0, n_frames - span)
    if mode == "all" and spec.all_clips is not None:
        if spec.start == "first":
            starts = np.unique(_first_starts(max_start, spec.all_clips, span))
        else:
            starts = np.unique(_segment_starts(max_start, spec.all_clips, "center", None))
    elif mode == "all":
        starts = _all_starts(max_start, spec.all_stride or span)
    elif spec.start == "first":
        starts = _first_starts(max_start, spec.segments, span)
    else:
        starts = _segment_starts(max_start, spec.segments, mode, rng)
    return np.stack([_window(int(s), spec.frames, step, n_frames) for s in starts])


def padded_positions(clips: np.ndarray, n_frames: int, fps: float | None, spec: ClipSpec) -> np.ndarray:
    """`[S, T]` bool: which clip positions of `sample_clip_indices(n_frames, fps, spec, ...)` lie past
    the video's last frame (they hold a repeat of it). With `spec.pad == "zero"` the loader zeroes
    them after normalisation; all False otherwise."""
    clips = np.asarray(clips)
    if spec.pad != "zero":
        return np.zeros(clips.shape, dtype=bool)
    # The first index of a window is its unclamped start; the rest follow at the spec's step.
    wanted = clips[:, :1] + spec.step(fps) * np.arange(clips.shape[1], dtype=np.int64)
    return wanted >= n_frames
