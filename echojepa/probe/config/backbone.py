"""The `backbone` config group (conf/backbone/*.yaml): one schema per backbone kind, chosen by `kind`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from echojepa.confkeys import Dispatch, keys, register
from echojepa.data.preprocess import PREPROCESS_KEYS


@dataclass(frozen=True)
class _BackboneCommon:
    kind: str
    name: str | None = None
    category: str | None = None  # the report's row category (runner.backbone_kind)
    preprocess: dict = field(default_factory=dict, metadata=keys(PREPROCESS_KEYS))


@dataclass(frozen=True)
class VitBackboneConfig(_BackboneCommon):
    """kind checkpoint / vjepa2 (a pretrained ViT's weights) or random (a seeded random-init ViT)."""

    checkpoint: str | None = None
    which: str = "target_encoder"
    model: Any = None  # a conf/model preset name or an inline preset
    rope_repeat_layout: bool | None = None
    seed: int = 0  # random


@dataclass(frozen=True)
class PixelStatsBackboneConfig(_BackboneCommon):
    grid: int = 8
    tubelet: int = 2
    layout: str = "cells"


@dataclass(frozen=True)
class EchoPrimeBackboneConfig(_BackboneCommon):
    weights: str | None = None
    allow_random: bool = False
    embed_dim: int = 512
    output: str = "embedding"
    seed: int = 0


@dataclass(frozen=True)
class PanEchoBackboneConfig(_BackboneCommon):
    weights: str | None = None
    allow_random: bool = False
    num_layers: int = 4
    num_heads: int = 8
    clip_len: int = 16
    upstream_frame_reshape: bool = True
    output: str = "tokens"
    seed: int = 0


BACKBONE_SCHEMAS: dict[str, type] = {
    "checkpoint": VitBackboneConfig,
    "vjepa2": VitBackboneConfig,
    "random": VitBackboneConfig,
    "pixel_stats": PixelStatsBackboneConfig,
    "echoprime": EchoPrimeBackboneConfig,
    "panecho": PanEchoBackboneConfig,
}


def _backbone_schema(raw: Any) -> Any:
    return BACKBONE_SCHEMAS.get(str(raw.get("kind")), _BackboneCommon)


BACKBONE_KEYS = Dispatch(_backbone_schema)
register("backbone", BACKBONE_KEYS, "echojepa.probe.backbones.build_backbone")
