"""Tensor transforms for echo clips: float video `[C, T, H, W]` in 0-1, plus an optional sector mask.

Calling convention (every transform): `t(video, mask=None, generator=None) -> (video, mask)`.
`mask` is an `[H, W]` bool tensor (True inside the sector) or None; geometric transforms apply the same
geometry to it, intensity transforms pass it through. Random transforms need an explicit
`torch.Generator` and draw their parameters once per call, so every frame of a clip gets the same crop.

There is deliberately no horizontal flip anywhere: cardiac anatomy is lateralised (in an apical
4-chamber view the RV sits on screen left), and a flipped heart is a different, rare acquisition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

Mask = Tensor | None


class VideoTransform(Protocol):
    def __call__(
        self, video: Tensor, mask: Mask = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Mask]: ...


def to_tensor_video(frames: np.ndarray) -> Tensor:
    """uint8 RGB frames `[T, H, W, 3]` -> float32 video `[3, T, H, W]` in 0-1."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 numpy frames, got {type(frames).__name__} {getattr(frames, 'dtype', '')}"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape [T, H, W, 3], got {tuple(frames.shape)}")
    video = torch.from_numpy(np.ascontiguousarray(frames))  # [T, H, W, 3]
    return video.permute(3, 0, 1, 2).float().div_(255.0)  # [3, T, H, W]


def _check_video(video: Tensor, mask: Mask) -> None:
    if video.ndim != 4:
        raise ValueError(f"expected a video tensor [C, T, H, W], got shape {tuple(video.shape)}")
    if mask is not None and tuple(mask.shape) != tuple(video.shape[-2:]):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match frame size {tuple(video.shape[-2:])}"
        )


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _need_generator(generator: torch.Generator | None, name: str) -> torch.Generator:
    if generator is None:
        raise ValueError(f"{name} is random: pass an explicit torch.Generator")
    return generator


def _resize(
    video: Tensor, mask: Mask, hw: tuple[int, int], interpolation: str, antialias: bool | None = None
) -> tuple[Tensor, Mask]:
    if tuple(video.shape[-2:]) == hw:
        return video, mask
    frames = video.transpose(0, 1)  # [T, C, H, W]: frames act as the batch
    if interpolation in ("bilinear", "bicubic"):
        # None: antialias on (our default); False reproduces OpenCV's resize, which never antialiases
        smooth = True if antialias is None else bool(antialias)
        out = F.interpolate(frames, size=hw, mode=interpolation, align_corners=False, antialias=smooth)
    elif interpolation == "area":  # OpenCV's INTER_AREA, both when shrinking and when enlarging
        shrink = video.shape[-2] >= hw[0] and video.shape[-1] >= hw[1]
        wy = _opencv_area_weights(video.shape[-2], hw[0], shrink).to(video)
        wx = _opencv_area_weights(video.shape[-1], hw[1], shrink).to(video)
        out = torch.einsum("oh,tchw,pw->tcop", wy, frames, wx)
    else:  # "nearest"
        out = F.interpolate(frames, size=hw, mode=interpolation)
    if interpolation == "bicubic":
        out = out.clamp_(0.0, 1.0)  # bicubic overshoots at sharp edges (sector border)
    if mask is not None:
        mask = F.interpolate(mask[None, None].float(), size=hw, mode="nearest")[0, 0] > 0.5
    return out.transpose(0, 1).contiguous(), mask  # [C, T, h, w]


def _opencv_area_weights(n_in: int, n_out: int, shrink: bool) -> Tensor:
    """[n_out, n_in] weights of cv2.resize(INTER_AREA) along one axis (imgproc/resize.cpp). Shrinking on
    both axes: each output pixel averages the input pixels its cell covers, partial pixels by their
    overlap. Otherwise: two-tap weights (1 - f, f) with f the part of the output cell past the input
    pixel edge, which holds pixels flat and blends only across their edges."""
    scale = n_in / n_out
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    for o in range(n_out):
        if shrink:
            lo, hi = o * scale, min(o * scale + scale, float(n_in))
            first, last = math.ceil(lo), math.floor(hi)
            cell = min(scale, n_in - lo)
            if first - lo > 1e-3:
                w[o, first - 1] += (first - lo) / cell
            w[o, first:last] += 1.0 / cell
            if hi - last > 1e-3 and last < n_in:
                w[o, last] += min(hi - last, 1.0) / cell
        else:
            sx = math.floor(o * scale)
            f = (o + 1) - (sx + 1) / scale
            f = 0.0 if f <= 0 else f - math.floor(f)
            if sx >= n_in - 1:
                sx, f = n_in - 1, 0.0
            w[o, sx] += 1 - f
            w[o, min(sx + 1, n_in - 1)] += f
    return w


def _crop(video: Tensor, mask: Mask, top: int, left: int, h: int, w: int) -> tuple[Tensor, Mask]:
    video = video[..., top : top + h, left : left + w]
    if mask is not None:
        mask = mask[top : top + h, left : left + w]
    return video, mask


class Resize:
    """Resize every frame. An int resizes the shorter side (keeping aspect); (h, w) is exact.
    `antialias` (bilinear/bicubic only): None keeps the default (on); False matches OpenCV."""

    def __init__(
        self, size: int | Sequence[int], interpolation: str = "bilinear", antialias: bool | None = None
    ) -> None:
        self.size = size
        self.interpolation = interpolation
        if antialias is not None:  # only set when asked, so default transforms describe as before
            self.antialias = bool(antialias)

    def __call__(
        self, video: Tensor, mask: Mask = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Mask]:
        _check_video(video, mask)
        h, w = video.shape[-2:]
        if isinstance(self.size, int):
            scale = self.size / min(h, w)
            hw = (max(1, round(h * scale)), max(1, round(w * scale)))
        else:
            hw = _pair(self.size)
        return _resize(video, mask, hw, self.interpolation, getattr(self, "antialias", None))


class CenterCrop:
    """Crop the central `size` region; the frame must be at least that large."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size)

    def __call__(
        self, video: Tensor, mask: Mask = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Mask]:
        _check_video(video, mask)
        h, w = video.shape[-2:]
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"CenterCrop {self.size} is larger than the frame {(h, w)}: resize first")
        return _crop(video, mask, (h - ch) // 2, (w - cw) // 2, ch, cw)


class CenterSquareCrop:
    """Crop the longer side to the shorter one, centred, with EchoPrime's arithmetic
    (``utils.crop_and_scale``): ``round((long - short) / 2)`` (Python rounding) off each end, so an
    odd difference can leave the frame one pixel off square, as upstream. A margin that rounds to
    zero crops nothing (upstream's ``img[p:-p]`` would then be empty)."""

    def __call__(
        self, video: Tensor, mask: Mask = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Mask]:
        _check_video(video, mask)
        h, w = video.shape[-2:]
        pad = int(round(abs(w - h) / 2))
        if pad == 0:
            return video, mask
        if w > h:
            return _crop(video, mask, 0, pad, h, w - 2 * pad)
        return _crop(video, mask, pad, 0, h - 2 * pad, w)


class ZoomCrop:
    """Cut ``int(size * fraction)`` pixels off each side (EchoPrime's ``zoom=0.1``), per axis."""

    def __init__(self, fraction: float) -> None:
        if not 0 <= fraction < 0.5:
            raise ValueError(f"ZoomCrop fraction must be in [0, 0.5), got {fraction}")
        self.fraction = float(fraction)

    def __call__(
        self, video: Tensor, mask: Mask = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Mask]:
        _check_video(video, mask)
        h, w = video.shape[-2:]
        dy, dx = int(h * self.fraction), int(w * self.fraction)
        return _crop(video, mask, dy, dx, h - 2 * dy, w - 2 * dx)


class MaskOutsideSector:
    """Zero every pixel outside the sector mask (a no-op when the reader gave no mask)."""

    def __call__(
        self, video: Tensor, mask: Mask = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Mask]:
        _check_video(video, mask)
        if mask is None:
            return video, mask
        return video * mask.to(video.dtype), mask


class QuantizeLevels:
    """Round 0-1 intensities to ``levels`` steps, halves up: what OpenCV's fixed-point resize returns
    for uint8 frames."""

    def __init__(self, levels: int = 255) -> None:
        if levels < 1:
            raise ValueError(f"QuantizeLevels needs levels >= 1, got {levels}")
        self.levels = int(levels)

    def __call__(
        self, video: Tensor, mask: Mask = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Mask]:
        _check_video(video, mask)
        return (video * self.levels + 0.5).floor().clamp(0, self.levels) / self.levels, mask


class ReverseChannels:
    """RGB -> BGR (and back): for weights trained on frames an OpenCV loader left in BGR order."""

    def __call__(
        self, video: Tensor, mask: Mask = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Mask]:
        _check_video(video, mask)
        return video.flip(0), mask


class RandomResizedCrop:
    """Crop a random area fraction in `scale` with aspect ratio (w/h) in `ratio`, resize to `size`.

    One crop per call, shared by all frames of the clip and by the mask.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: Sequence[float] = (0.5, 1.0),
        ratio: Sequence[float] = (0.9, 1.1),
        interpolation: str = "bilinear",
        attempts: int = 10,
    ) -> None:
        if not (0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"RandomResizedCrop scale must satisfy 0 < lo <= hi <= 1, got {tuple(scale)}")
        if not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f"RandomResizedCrop ratio must satisfy 0 < lo <= hi, got {tuple(ratio)}")
        self.size = _pair(size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.interpolation = interpolation
        self.attempts = attempts

    def get_params(self, height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
        """(top, left, h, w) of a crop; falls back to the largest centred in-ratio crop."""
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(self.attempts):
            u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
            target_area = area * (self.scale[0] + u[0] * (self.scale[1] - self.scale[0]))
            aspect = math.exp(log_lo + u[1] * (log_hi - log_lo))
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
                left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            h, w = height, round(height * self.ratio[1])
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(
        self, video: Tensor, mask: Mask = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Mask]:
        _check_video(video, mask)
        g = _need_generator(generator, "RandomResizedCrop")
        top, left, h, w = self.get_params(video.shape[-2], video.shape[-1], g)
        video, mask = _crop(video, mask, top, left, h, w)
        return _resize(video, mask, self.size, self.interpolation)


class Normalize:
    """Per-channel (x - mean) / std, with mean/std on the 0-1 scale (divide 0-255 values by 255)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"Normalize needs matching mean/std with std > 0, got {mean}, {std}")
        self.mean = torch.tensor([float(m) for m in mean])
        self.std = torch.tensor([float(s) for s in std])

    def __call__(
        self, video: Tensor, mask: Mask = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Mask]:
        _check_video(video, mask)
        if video.shape[0] != self.mean.numel():
            raise ValueError(f"Normalize has {self.mean.numel()} channels, video has {video.shape[0]}")
        shape = (-1, 1, 1, 1)
        mean = self.mean.to(video.dtype).view(shape)
        std = self.std.to(video.dtype).view(shape)
        return (video - mean) / std, mask


class Compose:
    """Apply transforms in order, threading the mask and sharing one generator."""

    def __init__(self, transforms: Sequence[VideoTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(
        self, video: Tensor, mask: Mask = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Mask]:
        for t in self.transforms:
            video, mask = t(video, mask, generator)
        return video, mask


def split_normalize(transform: VideoTransform | None) -> tuple[VideoTransform | None, VideoTransform | None]:
    """Split a transform into (everything before the trailing Normalize, the trailing Normalize).

    Degradations are defined on 0-1 intensities, so they must run between the two parts.
    Raises ValueError when a Normalize sits anywhere but last (degrading after it would be wrong).
    """
    if transform is None:
        return None, None
    if isinstance(transform, Normalize):
        return None, transform
    if not isinstance(transform, Compose):
        return transform, None
    steps = transform.transforms
    tail = steps[-1] if steps and isinstance(steps[-1], Normalize) else None
    head = steps[:-1] if tail is not None else steps
    if any(isinstance(t, Normalize) for t in head):
        raise ValueError("Normalize must be the last transform when degradations are applied")
    return Compose(head), tail


def build_transform(
    train: bool,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    scale: Sequence[float] = (0.5, 1.0),
    ratio: Sequence[float] = (0.9, 1.1),
    interpolation: str = "bilinear",
) -> Compose:
    """Train: RandomResizedCrop(size, scale, ratio) + Normalize. Eval: Resize(short side) + CenterCrop
    + Normalize. No flips either way."""
    if train:
        geometry: list[VideoTransform] = [RandomResizedCrop(size, scale, ratio, interpolation)]
    else:
        geometry = [Resize(size, interpolation), CenterCrop(size)]
    return Compose([*geometry, Normalize(mean, std)])
