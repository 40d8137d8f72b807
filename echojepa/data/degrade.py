"""Acoustic degradations for the robustness protocol, applied to decoded clips.

Every degradation works on a float video `[C, T, H, W]` with intensities in 0-1 (before Normalize),
changes pixels inside the sector mask only (the whole frame when no mask is given), and fixes its
parameters once per video, so every frame gets the same factor. Random parameters (the shadow centre)
come from an explicit `torch.Generator`.

Coordinates: normalised x = col / (W - 1), y = row / (H - 1) in [0, 1], probe apex at (0.5, 0);
pixel units X = col, Y = row.

Presets (levels) live in conf/degradation/<name>.yaml as `kind: <registry name>` plus parameters;
`load_degradation("depth_low")` builds one, `build_degradation("depth_attenuation", a=0.75)` builds
from plain arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from echojepa.confkeys import Dispatch, Kwargs, register
from echojepa.paths import CONF_DIR

DEGRADATION_DIR = CONF_DIR / "degradation"


def _grid(h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel row/column coordinates, each `[H, W]` float64."""
    rows = torch.arange(h, dtype=torch.float64, device=device)
    cols = torch.arange(w, dtype=torch.float64, device=device)
    return torch.meshgrid(rows, cols, indexing="ij")


def apex_radius(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """Normalised distance from the apex (0.5, 0), `[H, W]` float64."""
    device = device or torch.device("cpu")
    rows, cols = _grid(h, w, device)
    x = cols / max(w - 1, 1)
    y = rows / max(h - 1, 1)
    return torch.sqrt((x - 0.5) ** 2 + y**2)


def _check(video: Tensor, mask: Tensor | None) -> None:
    if video.ndim != 4:
        raise ValueError(f"degradations expect a video [C, T, H, W], got shape {tuple(video.shape)}")
    if mask is not None and tuple(mask.shape) != tuple(video.shape[-2:]):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match frame size {tuple(video.shape[-2:])}"
        )


def _inside(video: Tensor, degraded: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return degraded
    return torch.where(mask.to(torch.bool), degraded, video)  # [H, W] broadcasts over [C, T]


@dataclass(frozen=True)
class Degradation:
    """Base: identity. Subclasses implement `_degrade` on the whole frame; masking is shared."""

    kind: ClassVar[str] = "none"

    def apply(self, video: Tensor, mask: Tensor | None = None, rng: torch.Generator | None = None) -> Tensor:
        """Degraded copy of `video` `[C, T, H, W]`; pixels outside `mask` `[H, W]` are unchanged."""
        _check(video, mask)
        return _inside(video, self._degrade(video, mask, rng), mask)

    def _degrade(self, video: Tensor, mask: Tensor | None, rng: torch.Generator | None) -> Tensor:
        return video

    __call__ = apply


@dataclass(frozen=True)
class DepthAttenuation(Degradation):
    """I' = I * ((1 - m) exp(-a r) + m), r = normalised distance from the apex."""

    kind: ClassVar[str] = "depth_attenuation"
    a: float = 1.5
    m: float = 0.0

    def _degrade(self, video: Tensor, mask: Tensor | None, rng: torch.Generator | None) -> Tensor:
        r = apex_radius(video.shape[-2], video.shape[-1], video.device)
        factor = (1 - self.m) * torch.exp(-self.a * r) + self.m  # [H, W]
        return video * factor.to(video.dtype)


@dataclass(frozen=True)
class GaussianShadow(Degradation):
    """I' = I * (1 - s exp(-((X-mx)^2/(2 sx^2) + (Y-my)^2/(2 sy^2)))), sx = sigma W, sy = sigma H.

    The centre (mx, my) ~ U(centre_lo, centre_hi) * (W, H) is drawn from `rng` once per video.
    """

    kind: ClassVar[str] = "gaussian_shadow"
    s: float = 0.6
    sigma: float = 0.2
    centre_lo: float = 0.2
    centre_hi: float = 0.8

    def centre(self, h: int, w: int, rng: torch.Generator | None) -> tuple[float, float]:
        """(mx, my) in pixel units."""
        if rng is None:
            raise ValueError("GaussianShadow draws its centre at random: pass an explicit torch.Generator")
        u = torch.rand(2, generator=rng, dtype=torch.float64).tolist()
        span = self.centre_hi - self.centre_lo
        return (self.centre_lo + span * u[0]) * w, (self.centre_lo + span * u[1]) * h

    def _degrade(self, video: Tensor, mask: Tensor | None, rng: torch.Generator | None) -> Tensor:
        h, w = video.shape[-2:]
        mx, my = self.centre(h, w, rng)
        sx, sy = self.sigma * w, self.sigma * h
        rows, cols = _grid(h, w, video.device)
        shadow = 1 - self.s * torch.exp(-((cols - mx) ** 2 / (2 * sx**2) + (rows - my) ** 2 / (2 * sy**2)))
        return video * shadow.to(video.dtype)


@dataclass(frozen=True)
class Haze(Degradation):
    """Near-field clutter: a veil V = v exp(-r^2 / (2 width^2)), strongest at the apex, screen-blended
    as I' = I + (1 - I) V: it fills dark cavities with grey (as reverberation clutter does), stays in 0-1."""

    kind: ClassVar[str] = "haze"
    v: float = 0.35
    width: float = 0.3

    def _degrade(self, video: Tensor, mask: Tensor | None, rng: torch.Generator | None) -> Tensor:
        r = apex_radius(video.shape[-2], video.shape[-1], video.device)
        veil = (self.v * torch.exp(-(r**2) / (2 * self.width**2))).to(video.dtype)  # [H, W]
        return video + (1 - video) * veil


@dataclass(frozen=True)
class GainChange(Degradation):
    """Receiver gain change of `gain_db`: multiplicative on echo amplitude, hence additive after log
    compression with dynamic range `dynamic_range_db`: I' = clip(I + gain_db / DR, 0, 1)."""

    kind: ClassVar[str] = "gain"
    gain_db: float = -10.0
    dynamic_range_db: float = 60.0

    def _degrade(self, video: Tensor, mask: Tensor | None, rng: torch.Generator | None) -> Tensor:
        return (video + self.gain_db / self.dynamic_range_db).clamp(0.0, 1.0)


@dataclass(frozen=True)
class SpeckleSmoothing(Degradation):
    """Over-aggressive speckle reduction: per-frame Gaussian blur with sigma = sigma_frac * W pixels.

    Pixels outside the frame and outside the sector count as missing (normalised convolution), so the
    black surround does not bleed into the sector edge.
    """

    kind: ClassVar[str] = "smoothing"
    sigma_frac: float = 0.02
    truncate: float = 3.0

    def kernel(self, w: int) -> Tensor:
        """1-D normalised Gaussian taps, float64."""
        sigma = max(self.sigma_frac * w, 1e-6)
        radius = max(1, math.ceil(self.truncate * sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float64)
        k = torch.exp(-(x**2) / (2 * sigma**2))
        return k / k.sum()

    def _degrade(self, video: Tensor, mask: Tensor | None, rng: torch.Generator | None) -> Tensor:
        c, t, h, w = video.shape
        k = self.kernel(w).to(video.dtype)
        pad = k.numel() // 2
        frames = video.reshape(c * t, 1, h, w)  # [C*T, 1, H, W]
        if mask is None:
            weight = torch.ones(1, 1, h, w, dtype=video.dtype, device=video.device)
        else:
            weight = mask.to(video.dtype).view(1, 1, h, w)

        def blur(x: Tensor) -> Tensor:
            x = F.conv2d(F.pad(x, (pad, pad, 0, 0)), k.view(1, 1, 1, -1))
            return F.conv2d(F.pad(x, (0, 0, pad, pad)), k.view(1, 1, -1, 1))

        # Clamped denominators only matter outside the sector, where the result is discarded.
        return (blur(frames * weight) / blur(weight).clamp_min(1e-12)).reshape(c, t, h, w)


@dataclass(frozen=True)
class Quantisation(Degradation):
    """Coarse grey-level quantisation (heavy compression / low bit depth): I' = round(I (L-1)) / (L-1)."""

    kind: ClassVar[str] = "quantisation"
    levels: int = 16

    def _degrade(self, video: Tensor, mask: Tensor | None, rng: torch.Generator | None) -> Tensor:
        if self.levels < 2:
            raise ValueError(f"quantisation needs at least 2 levels, got {self.levels}")
        q = self.levels - 1
        return torch.round(video * q) / q


REGISTRY: dict[str, type[Degradation]] = {
    cls.kind: cls
    for cls in (
        Degradation,
        DepthAttenuation,
        GaussianShadow,
        Haze,
        GainChange,
        SpeckleSmoothing,
        Quantisation,
    )
}


def _degradation_schema(raw: Any) -> Any:
    cls = REGISTRY.get(str(raw.get("kind")), Degradation)
    return Kwargs(cls, extra=("kind",))


# a conf/degradation preset: `kind` (the registry name) plus that class's parameters
register("degradation", Dispatch(_degradation_schema), f"{__name__}.load_degradation")


def build_degradation(name: str, **params: Any) -> Degradation:
    """Build a degradation by registry name ("none", "depth_attenuation", "gaussian_shadow", "haze",
    "gain", "smoothing", "quantisation") from plain parameters."""
    if name not in REGISTRY:
        raise ValueError(f"unknown degradation {name!r}; known: {sorted(REGISTRY)}")
    try:
        return REGISTRY[name](**params)
    except TypeError as err:
        raise ValueError(f"bad parameters for degradation {name!r}: {err}") from err


def available_degradations(conf_dir: Path | None = None) -> list[str]:
    """Names of the presets in conf/degradation/."""
    return sorted(p.stem for p in (conf_dir or DEGRADATION_DIR).glob("*.yaml"))


def load_degradation(name: str, conf_dir: Path | None = None) -> Degradation:
    """Build the preset conf/degradation/<name>.yaml (`kind:` plus parameters)."""
    from omegaconf import OmegaConf  # config parsing only; the rest of the module needs no Hydra

    path = (conf_dir or DEGRADATION_DIR) / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"{path}: no such degradation preset; known: {available_degradations(conf_dir)}")
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(cfg, dict) or "kind" not in cfg:
        raise ValueError(f"{path}: a degradation preset needs a 'kind' key")
    params = {str(k): v for k, v in cfg.items() if k != "kind"}
    return build_degradation(str(cfg["kind"]), **params)
