"""Model presets, read from conf/model/*.yaml (the Hydra group ``model/``), and builders.

A preset file holds ``img_size``, ``num_frames``, ``encoder:`` (VisionTransformer kwargs) and
``predictor:`` (Predictor kwargs, without ``embed_dim``, which comes from the encoder). The builders
accept a preset name, a whole preset mapping (plain dict or OmegaConf node, e.g. ``cfg.model``), or the
bare constructor kwargs, so they work with or without Hydra.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from echojepa.models.predictor import Predictor
from echojepa.models.vit import VisionTransformer
from echojepa.paths import CONF_DIR

MODEL_CONF_DIR = CONF_DIR / "model"
_CLIP_KEYS = ("img_size", "num_frames")


def load_model_presets(conf_dir: Path = MODEL_CONF_DIR) -> dict[str, dict[str, Any]]:
    """Every ``<name>.yaml`` in ``conf_dir`` as a resolved plain dict, keyed by file stem."""
    return {
        path.stem: OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[misc]
        for path in sorted(conf_dir.glob("*.yaml"))
    }


def _encoder_kwargs(preset: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = {k: preset[k] for k in _CLIP_KEYS if k in preset}
    kwargs.update(preset["encoder"])
    return kwargs


MODEL_PRESETS: dict[str, dict[str, Any]] = load_model_presets()
ENCODER_PRESETS: dict[str, dict[str, Any]] = {n: _encoder_kwargs(p) for n, p in MODEL_PRESETS.items()}
"""Preset name -> full VisionTransformer kwargs (including img_size and num_frames)."""
PREDICTOR_PRESETS: dict[str, dict[str, Any]] = {n: dict(p["predictor"]) for n, p in MODEL_PRESETS.items()}
"""Preset name -> Predictor kwargs except embed_dim."""


def _as_dict(cfg: str | Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    if isinstance(cfg, str):
        if cfg not in MODEL_PRESETS:
            raise ValueError(
                f"unknown model preset {cfg!r}; available: {sorted(MODEL_PRESETS)} (from {MODEL_CONF_DIR})"
            )
        return dict(MODEL_PRESETS[cfg])
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def _check_kwargs(cls: type, kwargs: Mapping[str, Any], what: str) -> None:
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"{what}: unknown {cls.__name__} options {unknown}; accepted: {sorted(accepted)}")


def build_encoder(name_or_cfg: str | Mapping[str, Any] | DictConfig, **overrides: Any) -> VisionTransformer:
    """A VisionTransformer from a preset name, a preset mapping, or bare kwargs; ``overrides`` win."""
    cfg = _as_dict(name_or_cfg)
    kwargs = _encoder_kwargs(cfg) if "encoder" in cfg else cfg
    kwargs.update(overrides)
    _check_kwargs(
        VisionTransformer, kwargs, f"encoder config {name_or_cfg if isinstance(name_or_cfg, str) else ''}"
    )
    return VisionTransformer(**kwargs)


def build_predictor(cfg: str | Mapping[str, Any] | DictConfig, embed_dim: int, **overrides: Any) -> Predictor:
    """A Predictor for an encoder of width ``embed_dim``, from a preset name, preset mapping or kwargs."""
    cfg_dict = _as_dict(cfg)
    kwargs = dict(cfg_dict["predictor"]) if "predictor" in cfg_dict else cfg_dict
    kwargs.update(overrides, embed_dim=embed_dim)
    _check_kwargs(Predictor, kwargs, f"predictor config {cfg if isinstance(cfg, str) else ''}")
    return Predictor(**kwargs)
