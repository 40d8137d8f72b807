"""Frozen backbones for probing, built from a config: one interface (``echojepa.probe.backbone_base``) over
our checkpoints and released V-JEPA 2 / EchoJEPA weights and a random-init floor
(``echojepa.probe.vit_backbones``), a non-learned pixel-statistics floor (``echojepa.probe.pixel_stats``),
and the EchoPrime / PanEcho video encoders that users compare against
(``echojepa.probe.external_backbones``).

Configs are plain dicts (conf/backbone/*.yaml, or ``load_backbone_config(name)`` without Hydra).
Weights are only ever read from local files given in the config; torchvision is always built with
``weights=None``, so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from echojepa.paths import CONF_DIR
from echojepa.probe.backbone_base import Backbone, BackboneError, load_backbone_state
from echojepa.probe.external_backbones import build_echoprime, build_panecho
from echojepa.probe.pixel_stats import build_pixel_stats
from echojepa.probe.vit_backbones import (
    build_pretrained_vit,
    build_random_vit,
    finish_vit_backbone,
    vit_from_preset,
)

BACKBONE_CONF_DIR = CONF_DIR / "backbone"


BACKBONE_KINDS = ("checkpoint", "vjepa2", "random", "pixel_stats", "echoprime", "panecho")


def _plain(cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def load_backbone_config(preset: str, conf_dir: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """conf/backbone/<name>.yaml as a plain dict (missing ``???`` values stay as the string ``"???"``),
    with top-level ``overrides`` applied: the Hydra-free way to get a preset."""
    path = (conf_dir or BACKBONE_CONF_DIR) / f"{preset}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (conf_dir or BACKBONE_CONF_DIR).glob("*.yaml"))
        raise BackboneError(f"{path}: no such backbone preset; known: {known}")
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False, throw_on_missing=False)
    assert isinstance(cfg, dict)
    return {**cfg, **overrides}


_BUILDERS = {
    "checkpoint": lambda cfg: build_pretrained_vit(cfg, default_repeat_layout=None),
    "vjepa2": lambda cfg: build_pretrained_vit(cfg, default_repeat_layout=True),
    "random": build_random_vit,
    "pixel_stats": build_pixel_stats,
    "echoprime": build_echoprime,
    "panecho": build_panecho,
}


def build_backbone(cfg: Mapping[str, Any] | DictConfig) -> Backbone:
    """Build a frozen backbone from a config with ``kind`` in BACKBONE_KINDS (see conf/backbone/).

    "checkpoint": our pretraining run (reference.pt in the V-JEPA 2 layout, or a Lightning .ckpt);
    "vjepa2": a released V-JEPA 2 / EchoJEPA file (RoPE repeat layout on by default); both load the
    ``which`` entry (default ``target_encoder``, the EMA weights) strictly and refuse missing files.
    "random": a seeded random-init ViT preset. "pixel_stats": non-learned cell statistics.
    "echoprime" / "panecho": the comparison encoders from a user-supplied weights file.
    """
    plain = _plain(cfg)
    kind = plain.get("kind")
    if kind not in _BUILDERS:
        raise BackboneError(f"unknown backbone kind {kind!r}; expected one of {list(BACKBONE_KINDS)}")
    return _BUILDERS[kind](plain)


def build_backbone_from_state(
    config: Mapping[str, Any] | DictConfig, state: Mapping[str, Tensor], what: str = "backbone"
) -> Backbone:
    """The backbone a built backbone's ``config`` describes, with ``state`` (its ``state_dict()``) loaded
    strictly instead of its weights file: how a model bundle carries a backbone without the checkpoint.

    ViT kinds need the resolved architecture that building records in ``config["model"]``; external
    encoders are built untrained (a private RNG stream) and then filled. BackboneError on a config
    without that architecture, BackboneMismatchError (naming ``what``) on a state that does not fit."""
    plain = _plain(config)
    kind = plain.get("kind")
    if kind in ("checkpoint", "vjepa2"):
        arch = plain.get("model")
        if not isinstance(arch, Mapping):
            raise BackboneError("backbone config has no resolved model architecture")
        backbone = finish_vit_backbone(vit_from_preset(arch, plain.get("rope_repeat_layout")), plain, arch)
    elif kind in ("echoprime", "panecho"):
        backbone = build_backbone({**plain, "weights": None, "allow_random": True})  # weights below
    else:
        backbone = build_backbone(plain)
    load_backbone_state(backbone, dict(state), what=what)
    return backbone
