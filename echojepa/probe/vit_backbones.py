"""Our VisionTransformer as a probe backbone: our pretraining checkpoints (``checkpoint``), released
V-JEPA 2 / EchoJEPA weights (``vjepa2``) and a seeded random-init floor (``random``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from echojepa.data.preprocess import Preprocess
from echojepa.models.checkpoint import strip_prefixes
from echojepa.models.presets import MODEL_PRESETS, build_encoder
from echojepa.models.vit import VisionTransformer
from echojepa.probe.backbone_base import (
    Backbone,
    BackboneError,
    backbone_preprocess,
    config_weights_path,
    load_backbone_state,
    read_backbone_weights,
)


class ViTBackbone(Backbone):
    """Our VisionTransformer; all tokens of the last layer (after the final norm)."""

    def __init__(
        self,
        encoder: VisionTransformer,
        name: str,
        kind: str,
        preprocess: Preprocess,
        config: Mapping[str, Any],
    ) -> None:
        super().__init__(name, kind, preprocess, encoder.embed_dim, config)
        self.encoder = encoder

    def encode(self, video: Tensor) -> Tensor:
        return self.encoder(video)  # [B, T'*H'*W', D]

    def token_grid(self, clip_shape: Sequence[int]) -> tuple[int, int, int]:
        """Tubelets x patch rows x patch columns; refuses a clip that does not tile (as ``encode`` does)."""
        grid = self.encoder.input_grid(torch.empty(1, *clip_shape, device="meta"))
        return int(grid[0]), int(grid[1]), int(grid[2])


def _model_preset(model: Any) -> dict[str, Any]:
    """A model preset as a resolved plain dict (name from conf/model/, or an inline mapping)."""
    if model is None:
        raise BackboneError(
            "backbone config needs `model` (a preset name from conf/model/ or a preset mapping)"
        )
    if isinstance(model, str):
        if model not in MODEL_PRESETS:
            raise BackboneError(f"unknown model preset {model!r}; available: {sorted(MODEL_PRESETS)}")
        return dict(MODEL_PRESETS[model])
    return dict(model)


def vit_from_preset(preset: Mapping[str, Any], rope_repeat_layout: bool | None) -> VisionTransformer:
    overrides = {} if rope_repeat_layout is None else {"rope_repeat_layout": bool(rope_repeat_layout)}
    return build_encoder(preset, **overrides)


def _encoder_state(
    ckpt: Mapping[str, Any], which: str, path: Path
) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    """(encoder state without wrapper prefixes, Lightning hyper-parameters or None) from either layout."""
    if "state_dict" in ckpt and isinstance(ckpt["state_dict"], Mapping):  # a Lightning .ckpt
        prefix = f"{which}."
        state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        if not state:
            modules = sorted({k.split(".", 1)[0] for k in ckpt["state_dict"]})
            raise BackboneError(
                f"{path}: Lightning checkpoint has no {which!r} weights; modules present: {modules}"
            )
        hparams = ckpt.get("hyper_parameters")
        return strip_prefixes(state), dict(hparams) if isinstance(hparams, Mapping) else None
    if which not in ckpt or not isinstance(ckpt[which], Mapping):
        keys = sorted(map(str, ckpt))
        shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
        raise BackboneError(f"{path}: no model entry {which!r}; top-level keys: {shown}")
    return strip_prefixes(ckpt[which]), None


def build_pretrained_vit(cfg: Mapping[str, Any], default_repeat_layout: bool | None) -> Backbone:
    path = config_weights_path(cfg, "checkpoint")
    which = str(cfg.get("which") or "target_encoder")
    state, hparams = _encoder_state(read_backbone_weights(path, "checkpoint"), which, path)
    if cfg.get("model") is None and hparams is not None and "encoder" in hparams:
        # A Lightning checkpoint of our pretraining records its own encoder config.
        absent = [k for k in ("img_size", "num_frames") if k not in hparams]
        if absent or not isinstance(hparams["encoder"], Mapping):
            raise BackboneError(f"{path}: Lightning hyper-parameters lack a usable encoder config {absent}")
        preset = {
            "img_size": hparams["img_size"],
            "num_frames": hparams["num_frames"],
            "encoder": dict(hparams["encoder"]),
        }
    else:
        preset = _model_preset(cfg.get("model"))
    rope = cfg.get("rope_repeat_layout", default_repeat_layout)
    encoder = vit_from_preset(preset, rope)
    load_backbone_state(encoder, state, what=f"{which} of {path}")
    return finish_vit_backbone(encoder, cfg, preset)


def finish_vit_backbone(
    encoder: VisionTransformer, cfg: Mapping[str, Any], preset: Mapping[str, Any]
) -> Backbone:
    preprocess = backbone_preprocess(
        cfg, img_size=preset.get("img_size"), num_frames=preset.get("num_frames")
    )
    # Only what shapes the encoder enters the config (and identity): not the preset's predictor.
    arch = {k: preset[k] for k in ("img_size", "num_frames", "encoder") if k in preset}
    config = {**cfg, "model": arch, "rope_repeat_layout": encoder.rope_repeat_layout}
    return ViTBackbone(
        encoder, str(cfg.get("name") or cfg["kind"]), str(cfg["kind"]), preprocess, config
    ).freeze()


def build_random_vit(cfg: Mapping[str, Any]) -> Backbone:
    preset = _model_preset(cfg.get("model"))
    # A private RNG stream: building the floor must not shift anyone else's random numbers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get("seed", 0)))
        encoder = vit_from_preset(preset, cfg.get("rope_repeat_layout"))
    return finish_vit_backbone(encoder, cfg, preset)
