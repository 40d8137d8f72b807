"""What a frozen backbone expects as input, declared in its config (conf/backbone/*.yaml `preprocess`):
which frames, how they are cropped, resized, quantised, ordered and normalised.

One reader (``preprocess_from_config``) turns the config block into a frozen ``Preprocess``, refusing
unknown keys; ``Preprocess.clip_spec`` and ``Preprocess.transform`` turn it into the clip sampling and the
tensor transform every consumer uses (probe features, predict). Every option defaults to what our own
encoders use, so only a backbone that needs a different recipe names it: EchoPrime and PanEcho state
the inputs their released weights were trained on, with no code branch on the backbone's name.

Recipe, in order (eval; training views replace the crop and resize by a random resized crop):
sector mask -> square crop -> zoom crop -> resize -> centre crop -> quantise -> colour order ->
normalise; zero padding of frames past the end of a short video comes after normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from echojepa.confkeys import Kwargs, refuse_unknown
from echojepa.data.clips import CLIP_PADS, CLIP_STARTS, ClipSpec, padded_positions
from echojepa.data.transforms import (
    CenterCrop,
    CenterSquareCrop,
    Compose,
    MaskOutsideSector,
    Normalize,
    QuantizeLevels,
    RandomResizedCrop,
    Resize,
    ReverseChannels,
    VideoTransform,
    ZoomCrop,
)

RESIZE_MODES = ("short_side", "square")
INTERPOLATIONS = ("bilinear", "bicubic", "area", "nearest")
CHANNEL_ORDERS = ("rgb", "bgr")
# Fields that every recipe states; the others enter a backbone's identity only when set away from
# their default, so adding an option never changes the identity (cache keys, bundles) of the rest.
_CORE = ("img_size", "num_frames", "frame_step", "target_fps", "mean", "std", "segments")


@dataclass(frozen=True)
class Preprocess:
    """A backbone's input recipe. Clips: ``num_frames`` frames every ``frame_step`` source frames (or
    resampled to ``target_fps``), ``segments`` clips per video, placed by ``start`` ("spread" over the
    video, or "first": from frame 0), short videos padded by ``pad`` ("repeat" the last frame, or "zero"
    frames after normalisation); ``fixed_step`` keeps the frame step even when a task protocol asks for
    another; ``tta_clips`` is the number of clips averaged when a protocol uses all clips (None: every
    window). Frames (0-1 RGB): zero outside the sector (``sector_mask``), centre crop to a square
    (``square_crop``), cut ``zoom`` off each side, resize (``resize``: the short side, or both sides, to
    ``resize_to``, default ``img_size``; ``interpolation``, ``antialias``), centre crop ``img_size``,
    round to 8-bit levels (``round_to_uint8``, as an OpenCV resize on uint8 frames), channel order
    (``channel_order``), then ``(x - mean) / std`` with mean/std on the 0-1 scale."""

    img_size: int
    num_frames: int
    frame_step: int | None
    target_fps: float | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    segments: int = 1
    start: str = "spread"
    pad: str = "repeat"
    fixed_step: bool = False
    tta_clips: int | None = None
    sector_mask: bool = False
    square_crop: bool = False
    zoom: float = 0.0
    resize: str = "short_side"
    resize_to: int | None = None
    interpolation: str = "bilinear"
    antialias: bool | None = None
    round_to_uint8: bool = False
    channel_order: str = "rgb"

    def __post_init__(self) -> None:
        if self.img_size < 1 or self.num_frames < 1 or self.segments < 1:
            raise ValueError(f"Preprocess needs positive img_size/num_frames/segments, got {self}")
        if self.frame_step is None and self.target_fps is None:
            raise ValueError("Preprocess needs a frame_step or a target_fps")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ValueError(f"Preprocess needs 3 means and 3 positive stds, got {self.mean} / {self.std}")
        choices = {
            "start": (self.start, CLIP_STARTS),
            "pad": (self.pad, CLIP_PADS),
            "resize": (self.resize, RESIZE_MODES),
            "interpolation": (self.interpolation, INTERPOLATIONS),
            "channel_order": (self.channel_order, CHANNEL_ORDERS),
        }
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"preprocess.{key} must be one of {list(allowed)}, got {value!r}")
        if not 0 <= self.zoom < 0.5:
            raise ValueError(f"preprocess.zoom must be in [0, 0.5), got {self.zoom}")
        if self.tta_clips is not None and self.tta_clips < 1:
            raise ValueError(f"preprocess.tta_clips must be >= 1 or null, got {self.tta_clips}")
        if self.resize_to is not None and self.resize_to < self.img_size:
            raise ValueError(f"preprocess.resize_to {self.resize_to} is below img_size {self.img_size}")

    # --- what consumers call ---------------------------------------------------------------------------
    def clip_spec(self, task_clip: Mapping[str, Any] | None = None) -> ClipSpec:
        """The clip sampling for a task: frames from the backbone unless the task names them; step and
        segments from the task protocol unless it leaves them null, or the backbone fixes its step."""
        clip = dict(task_clip or {})
        frames = clip.get("frames") or self.num_frames
        step, fps = self.frame_step, self.target_fps
        if not self.fixed_step:
            step = clip.get("frame_step") if clip.get("frame_step") is not None else step
            fps = clip.get("target_fps") if clip.get("target_fps") is not None else fps
        return ClipSpec(
            frames=int(frames),
            frame_step=None if step is None else int(step),
            target_fps=None if fps is None else float(fps),
            segments=int(clip.get("segments") or self.segments),
            start=self.start,
            pad=self.pad,
            all_clips=self.tta_clips,
        )

    def transform(self, train: bool = False) -> Compose:
        """The frame transform (0-1 RGB video [C, T, H, W] -> normalised model input). ``train``: a
        random resized crop replaces the crop and resize steps (augmented training views)."""
        steps: list[VideoTransform] = [MaskOutsideSector()] if self.sector_mask else []
        if train:
            steps.append(RandomResizedCrop(self.img_size, interpolation=self.interpolation))
        else:
            if self.square_crop:
                steps.append(CenterSquareCrop())
            if self.zoom > 0:
                steps.append(ZoomCrop(self.zoom))
            target = self.resize_to or self.img_size
            size = target if self.resize == "short_side" else (target, target)
            steps += [Resize(size, self.interpolation, self.antialias), CenterCrop(self.img_size)]
        if self.round_to_uint8:
            steps.append(QuantizeLevels(255))
        if self.channel_order == "bgr":
            steps.append(ReverseChannels())
        return Compose([*steps, Normalize(self.mean, self.std)])

    def identity(self) -> dict[str, Any]:
        """What enters a backbone's identity: the core fields plus every option set away from its default."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _CORE or value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


# the keys of a `preprocess` block: Preprocess's fields, and value_scale (applied to mean/std, then dropped)
PREPROCESS_KEYS = Kwargs(Preprocess, extra=("value_scale",))


def preprocess_from_config(
    cfg: Mapping[str, Any], img_size: int | None = None, num_frames: int | None = None
) -> Preprocess:
    """A Preprocess from a config mapping (the one reader; unknown keys are refused). ``value_scale``
    (e.g. 255) says mean/std are given on a 0-value_scale intensity scale (how EchoPrime publishes them);
    they are converted to 0-1. ``img_size``/``num_frames`` fill in keys that are missing or null (a ViT
    preset's clip size)."""
    refuse_unknown(cfg, PREPROCESS_KEYS.accepted(), "preprocess", ValueError)
    scale = float(cfg.get("value_scale") or 1.0)
    size = cfg.get("img_size") if cfg.get("img_size") is not None else img_size
    frames = cfg.get("num_frames") if cfg.get("num_frames") is not None else num_frames
    missing = [k for k, v in (("img_size", size), ("num_frames", frames)) if v is None]
    missing += [k for k in ("mean", "std") if cfg.get(k) is None]
    if missing:
        raise ValueError(f"preprocess: missing {missing}")
    options: dict[str, Any] = {}
    for key, cast in (
        ("start", str),
        ("pad", str),
        ("fixed_step", bool),
        ("sector_mask", bool),
        ("square_crop", bool),
        ("zoom", float),
        ("resize", str),
        ("interpolation", str),
        ("round_to_uint8", bool),
        ("channel_order", str),
    ):
        if cfg.get(key) is not None:
            options[key] = cast(cfg[key])
    for key in ("tta_clips", "resize_to"):
        if cfg.get(key) is not None:
            options[key] = int(cfg[key])
    if cfg.get("antialias") is not None:
        options["antialias"] = bool(cfg["antialias"])
    return Preprocess(
        img_size=int(size),  # type: ignore[arg-type]
        num_frames=int(frames),  # type: ignore[arg-type]
        frame_step=None if cfg.get("frame_step") is None else int(cfg["frame_step"]),
        target_fps=None if cfg.get("target_fps") is None else float(cfg["target_fps"]),
        mean=tuple(float(m) / scale for m in cfg["mean"]),  # type: ignore[arg-type]
        std=tuple(float(s) / scale for s in cfg["std"]),  # type: ignore[arg-type]
        segments=int(cfg.get("segments") or 1),
        **options,
    )


def zero_padding(
    clips_video: Tensor, clips: np.ndarray, n_frames: int, fps: float | None, spec: ClipSpec
) -> Tensor:
    """Zero the frames of ``clips_video`` [S, C, T, H, W] (normalised) that lie past the end of a short
    video, when ``spec.pad == "zero"`` (EchoPrime pads after normalisation); unchanged otherwise."""
    if spec.pad != "zero":
        return clips_video
    past = torch.from_numpy(padded_positions(clips, n_frames, fps, spec))  # [S, T]
    if not bool(past.any()):
        return clips_video
    keep = (~past).to(clips_video.dtype)[:, None, :, None, None]
    return clips_video * keep
