"""Frozen backbones for probing: one interface over our checkpoints, released V-JEPA 2 / EchoJEPA
weights, a random-init floor, a non-learned pixel-statistics floor, and the EchoPrime / PanEcho video
encoders that users compare against.

Every backbone is an ``nn.Module`` that maps a normalised clip ``[B, C, T, H, W]`` to tokens
``[B, N, D]`` (``N = 1`` for pooled encoders), declares what input it expects (``preprocess``), stays in
eval mode with no gradients, and has a stable ``identity()`` (kind + architecture + weights digest) that
the feature cache uses as part of its key.

Configs are plain dicts (conf/backbone/*.yaml, or ``load_backbone_config(name)`` without Hydra).
Weights are only ever read from local files given in the config; torchvision is always built with
``weights=None``, so nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from echojepa.data.preprocess import Preprocess, preprocess_from_config
from echojepa.io.weights import read_weights_file
from echojepa.models.checkpoint import (
    CheckpointMismatchError,
    load_state_dict_strict,
    strip_prefixes,
)
from echojepa.models.external import PANECHO_CLIP_LEN, PanEchoVideoEncoder, echoprime_encoder
from echojepa.models.presets import MODEL_PRESETS, build_encoder
from echojepa.models.vit import VisionTransformer
from echojepa.paths import CONF_DIR
from echojepa.probe.errors import ProbeInputError

__all__ = [
    "BACKBONE_KINDS",
    "Backbone",
    "BackboneError",
    "BackboneMismatchError",
    "Preprocess",
    "build_backbone",
    "build_backbone_from_state",
    "load_backbone_config",
    "preprocess_from_config",
]

BACKBONE_CONF_DIR = CONF_DIR / "backbone"
VECTOR_FEATURES = ("mean", "log_std", "log_amplitude", "frequency", "log_motion", "log_range")
BACKBONE_KINDS = ("checkpoint", "vjepa2", "random", "pixel_stats", "echoprime", "panecho")
# Config keys that locate weights or label a run but do not change what the backbone computes: left out
# of identity(), which covers the weights themselves through their digest.
_NON_IDENTITY_KEYS = ("name", "checkpoint", "weights", "allow_random")


# ----- user errors ----------------------------------------------------------------------------------------
class BackboneError(ProbeInputError):
    """A backbone cannot be built from its config or weights file. The message is one line naming the
    file (or the config key) and the reason; ``echojepa-probe`` prints it as is and exits 2."""


class BackboneMismatchError(BackboneError, CheckpointMismatchError):
    """A weights file whose state dict does not fit the backbone (missing, unexpected, mis-shaped keys)."""


def read_backbone_weights(path: Path, what: str = "backbone weights") -> dict[str, Any]:
    """A weights file as a dict (weights-only); BackboneError naming the file when it cannot be used."""
    return read_weights_file(path, what, error=BackboneError)


def _preprocess(cfg: Mapping[str, Any], **fill: Any) -> Preprocess:
    """The config's ``preprocess`` block through the one reader; a bad block is a BackboneError."""
    try:
        return preprocess_from_config(cfg.get("preprocess") or {}, **fill)
    except ValueError as exc:
        raise BackboneError(f"backbone {cfg.get('name', cfg.get('kind'))!r}: {exc}") from exc


def _load_strict(module: nn.Module, state: Mapping[str, Tensor], what: str) -> None:
    """load_state_dict_strict, its multi-line report folded into one line (BackboneMismatchError)."""
    try:
        load_state_dict_strict(module, state, what=what)
    except CheckpointMismatchError as exc:
        raise BackboneMismatchError("; ".join(line.strip() for line in str(exc).splitlines())) from exc


# ----- the common interface ------------------------------------------------------------------------------
def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def state_digest(module: nn.Module) -> str:
    """sha256 over every state entry (name, dtype, shape, raw bytes), in name order."""
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(value.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class Backbone(nn.Module):
    """A frozen video encoder: ``forward(video [B, C, T, H, W]) -> tokens [B, N, D]``.

    Subclasses implement ``encode`` and, where their tokens tile the clip, ``token_grid``; the base
    class checks shapes, keeps the module in eval mode with ``requires_grad=False`` and provides
    ``identity()``.
    """

    def __init__(
        self, name: str, kind: str, preprocess: Preprocess, embed_dim: int, config: Mapping[str, Any]
    ) -> None:
        super().__init__()
        self.name = name
        self.kind = kind
        self.preprocess = preprocess
        self.embed_dim = int(embed_dim)
        self.config = dict(config)
        self._identity: str | None = None

    def encode(self, video: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def token_grid(self, clip_shape: Sequence[int]) -> tuple[int, int, int] | None:
        """(T', H', W') such that the N tokens of one clip ``[C, T, H, W]`` are that grid in row-major
        order (time, then rows, then columns) over the clip; None when they are not (pooled embeddings,
        class tokens, tokens that mix frames). Attention maps are drawn only on such a grid."""
        return None

    def freeze(self) -> Backbone:
        for p in self.parameters():
            p.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> Backbone:
        # Frozen evaluation: a parent module's .train() must not switch on dropout / BN updates here.
        return super().train(False)

    @torch.no_grad()
    def forward(self, video: Tensor) -> Tensor:
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(
                f"backbone {self.name!r} expects video [B, 3, T, H, W], got {tuple(video.shape)}"
            )
        tokens = self.encode(video)  # [B, N, D]
        if tokens.ndim != 3 or tokens.shape[0] != video.shape[0] or tokens.shape[-1] != self.embed_dim:
            raise RuntimeError(
                f"backbone {self.name!r} produced {tuple(tokens.shape)}, expected [B, N, {self.embed_dim}]"
            )
        return tokens

    def identity(self) -> str:
        """Stable sha256 of kind + config (without paths and labels) + preprocessing + weights.

        Computed once: the backbone is frozen, so its weights cannot change afterwards."""
        if self._identity is None:
            config = {k: v for k, v in self.config.items() if k not in _NON_IDENTITY_KEYS}
            payload = {
                "kind": self.kind,
                "config": config,
                "preprocess": self.preprocess.identity(),
                "embed_dim": self.embed_dim,
                "weights": state_digest(self),
            }
            self._identity = hashlib.sha256(_canonical_json(payload).encode()).hexdigest()
        return self._identity

    def extra_repr(self) -> str:
        return f"name={self.name!r}, kind={self.kind!r}, embed_dim={self.embed_dim}"


# ----- ViT kinds: checkpoint, vjepa2, random ------------------------------------------------------------
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


def _vit_from_preset(preset: Mapping[str, Any], rope_repeat_layout: bool | None) -> VisionTransformer:
    overrides = {} if rope_repeat_layout is None else {"rope_repeat_layout": bool(rope_repeat_layout)}
    return build_encoder(preset, **overrides)


def _checkpoint_path(cfg: Mapping[str, Any], key: str) -> Path:
    value = cfg.get(key)
    if value in (None, "", "???"):
        raise BackboneError(
            f"backbone {cfg.get('name', cfg['kind'])!r}: `{key}` is not set (path to a weights file)"
        )
    return Path(str(value)).expanduser()


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


def _build_pretrained_vit(cfg: Mapping[str, Any], default_repeat_layout: bool | None) -> Backbone:
    path = _checkpoint_path(cfg, "checkpoint")
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
    encoder = _vit_from_preset(preset, rope)
    _load_strict(encoder, state, what=f"{which} of {path}")
    return _finish_vit(encoder, cfg, preset)


def _finish_vit(encoder: VisionTransformer, cfg: Mapping[str, Any], preset: Mapping[str, Any]) -> Backbone:
    preprocess = _preprocess(cfg, img_size=preset.get("img_size"), num_frames=preset.get("num_frames"))
    # Only what shapes the encoder enters the config (and identity): not the preset's predictor.
    arch = {k: preset[k] for k in ("img_size", "num_frames", "encoder") if k in preset}
    config = {**cfg, "model": arch, "rope_repeat_layout": encoder.rope_repeat_layout}
    return ViTBackbone(
        encoder, str(cfg.get("name") or cfg["kind"]), str(cfg["kind"]), preprocess, config
    ).freeze()


def _build_random_vit(cfg: Mapping[str, Any]) -> Backbone:
    preset = _model_preset(cfg.get("model"))
    # A private RNG stream: building the floor must not shift anyone else's random numbers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get("seed", 0)))
        encoder = _vit_from_preset(preset, cfg.get("rope_repeat_layout"))
    return _finish_vit(encoder, cfg, preset)


# ----- pixel statistics: a non-learned floor that still sees the dynamics ---------------------------------
PIXEL_STAT_FEATURES = (
    "mean",
    "std",
    "dominant_amplitude",
    "dominant_frequency",
    "motion",
    "range",
    "row",
    "col",
)


PIXEL_TOKEN_FEATURES = ("mean", "spatial_std", "motion", "change", "time", "row", "col")
PIXEL_LAYOUTS = ("tokens", "cells", "vector")


class PixelStatsBackbone(Backbone):
    """A non-learned floor. Layouts:

    ``tokens`` (the default): a space-time token sequence like any video encoder's. The clip is cut into
    tubelets of ``tubelet`` frames x one cell of a g x g grid; each tubelet gives one token of
    ``PIXEL_TOKEN_FEATURES``: its mean intensity, mean within-cell spatial std (texture, speckle), mean
    |x(t+1) - x(t)| per pixel over its frame pairs (motion; 0 for one frame), signed change of the cell
    mean from its first to its last frame, and its normalised (time, row, column) centre. Tokens come
    in (tubelet, row, column) order: ``token_grid`` is (T / tubelet, g, g). Nothing is summarised over
    the whole clip: relating tubelets across time (where EF lives) is left to the probe, as for an encoder.

    ``cells`` / ``vector`` (the earlier floors): per cell, statistics of the whole clip's cell-mean series
    s(t) (``PIXEL_STAT_FEATURES``: temporal mean and std, amplitude and frequency of its strongest non-DC
    Fourier component, mean |s(t+1) - s(t)|, max - min, and the cell's row/column); one token per cell, or
    one token of every cell (``vector``, the scale-free ones in log space).

    Expects 0-1 intensities (its preprocess has mean 0, std 1).
    """

    def __init__(
        self,
        grid: int,
        name: str,
        preprocess: Preprocess,
        config: Mapping[str, Any],
        layout: str = "cells",
        tubelet: int = 2,
    ) -> None:
        if layout not in PIXEL_LAYOUTS:
            raise BackboneError(f"pixel_stats layout must be one of {list(PIXEL_LAYOUTS)}, got {layout!r}")
        dim = {
            "tokens": len(PIXEL_TOKEN_FEATURES),
            "cells": len(PIXEL_STAT_FEATURES),
            "vector": grid * grid * len(VECTOR_FEATURES),
        }[layout]
        super().__init__(name, "pixel_stats", preprocess, dim, config)
        if grid < 1 or tubelet < 1:
            raise BackboneError(f"pixel_stats grid and tubelet must be >= 1, got {grid} and {tubelet}")
        self.grid = int(grid)
        self.layout = layout
        self.tubelet = int(tubelet)

    def encode(self, video: Tensor) -> Tensor:
        if self.layout == "tokens":
            return self.tubelet_stats(video)  # [B, T'*g*g, 7]
        cells = self.cell_stats(video)  # [B, G, 8]
        if self.layout == "cells":
            return cells
        # One token of every cell's statistics, the scale-free ones in log space so that amplitudes
        # (~1e-2) and means (~0.3) meet the probe's LayerNorm on a comparable scale.
        eps = 1e-4
        mean, std, amp, freq, motion, span = (cells[..., i] for i in range(6))
        feats = torch.stack(
            [mean, (std + eps).log(), (amp + eps).log(), freq, (motion + eps).log(), (span + eps).log()],
            dim=-1,
        )  # [B, G, 6]
        return feats.flatten(1)[:, None]  # [B, 1, G*6]

    def token_grid(self, clip_shape: Sequence[int]) -> tuple[int, int, int] | None:
        """``tokens``: (T / tubelet, g, g). ``cells``: one token per cell, rows then columns, each
        summarising the whole clip in time, so (1, g, g). ``vector``: one token of every cell's
        statistics, which has no place on the clip."""
        if self.layout == "tokens":
            return self._tubelets(int(clip_shape[1])), self.grid, self.grid
        return (1, self.grid, self.grid) if self.layout == "cells" else None

    def _tubelets(self, frames: int) -> int:
        if frames % self.tubelet:
            raise ValueError(
                f"pixel_stats: a clip of {frames} frames does not split into tubelets of {self.tubelet}"
            )
        return frames // self.tubelet

    def tubelet_stats(self, video: Tensor) -> Tensor:
        """[B, 3, T, H, W] (0-1) -> [B, T/tubelet * g * g, 7] tokens, see the class docstring."""
        b, _, t, _, _ = video.shape
        g, k = self.grid, self.tubelet
        tt = self._tubelets(t)
        x = video.float().mean(dim=1)  # [B, T, H, W]
        mean_px = F.adaptive_avg_pool2d(x, (g, g))  # [B, T, g, g] cell means per frame
        var_px = (F.adaptive_avg_pool2d(x * x, (g, g)) - mean_px.square()).clamp_min(0.0)
        per_frame = mean_px.view(b, tt, k, g, g)
        mean = per_frame.mean(dim=2)  # [B, T', g, g]
        spatial_std = var_px.sqrt().view(b, tt, k, g, g).mean(dim=2)
        change = per_frame[:, :, -1] - per_frame[:, :, 0]
        if k > 1:
            diff = (x[:, 1:] - x[:, :-1]).abs()  # [B, T-1, H, W]
            pair_cells = F.adaptive_avg_pool2d(diff, (g, g))  # [B, T-1, g, g]
            inside = torch.arange(t - 1, device=video.device) % k != k - 1  # pairs within a tubelet
            motion = pair_cells[:, inside].view(b, tt, k - 1, g, g).mean(dim=2)
        else:
            motion = torch.zeros_like(mean)
        t_pos = (torch.arange(tt, device=video.device, dtype=mean.dtype) + 0.5) / tt
        pos = (torch.arange(g, device=video.device, dtype=mean.dtype) + 0.5) / g
        time, row, col = torch.meshgrid(t_pos, pos, pos, indexing="ij")  # [T', g, g]
        feats = [mean, spatial_std, motion, change] + [p.expand(b, tt, g, g) for p in (time, row, col)]
        return torch.stack(feats, dim=-1).reshape(b, tt * g * g, len(PIXEL_TOKEN_FEATURES))

    def cell_stats(self, video: Tensor) -> Tensor:
        b, _, t, _, _ = video.shape
        g = self.grid
        x = video.float().mean(dim=1)  # [B, T, H, W]
        cells = F.adaptive_avg_pool2d(x, (g, g)).reshape(b, t, g * g).transpose(1, 2)  # [B, G, T]
        mean = cells.mean(dim=-1)
        std = cells.std(dim=-1, unbiased=False) if t > 1 else torch.zeros_like(mean)
        spectrum = torch.fft.rfft(cells - mean[..., None], dim=-1).abs()  # [B, G, T//2+1]
        if spectrum.shape[-1] > 1:
            peak, k = spectrum[..., 1:].max(dim=-1)
            # one-sided amplitude of a sinusoid; the Nyquist bin (even T) is not doubled
            nyquist = (t % 2 == 0) & (k + 1 == t // 2)
            amplitude = peak * torch.where(nyquist, 1.0, 2.0) / t
            frequency = (k + 1).float() / t
        else:
            amplitude = frequency = torch.zeros_like(mean)
        motion = (cells[..., 1:] - cells[..., :-1]).abs().mean(dim=-1) if t > 1 else torch.zeros_like(mean)
        span = cells.amax(dim=-1) - cells.amin(dim=-1)
        pos = (torch.arange(g, device=video.device, dtype=mean.dtype) + 0.5) / g
        row = pos.repeat_interleave(g).expand(b, -1)  # [B, G]
        col = pos.repeat(g).expand(b, -1)  # [B, G]
        return torch.stack([mean, std, amplitude, frequency, motion, span, row, col], dim=-1)  # [B, G, 8]


def _build_pixel_stats(cfg: Mapping[str, Any]) -> Backbone:
    preprocess = _preprocess(cfg)
    return PixelStatsBackbone(
        int(cfg.get("grid", 8)),
        str(cfg.get("name") or "pixel_stats"),
        preprocess,
        cfg,
        layout=str(cfg.get("layout", "cells")),
        tubelet=int(cfg.get("tubelet", 2)),
    ).freeze()


# ----- external encoders: weights files as users have them ---------------------------------------------
def _weights_state(cfg: Mapping[str, Any]) -> tuple[dict[str, Tensor], Path] | None:
    """The user-supplied weights file as (tensor entries without wrapper prefixes, path); None only for
    an explicit random build. A ``weights`` / ``state_dict`` / ``model`` entry holding the state dict is
    unwrapped (PanEcho's release is ``{'weights': ..., 'optimizer': ...}``; the optimizer is not read)."""
    if cfg.get("weights") in (None, ""):
        if not cfg.get("allow_random", False):
            raise BackboneError(
                f"backbone {cfg.get('name', cfg['kind'])!r}: `weights` is null; set a weights file, or "
                "`allow_random: true` to build an untrained encoder on purpose (tests)"
            )
        return None
    path = _checkpoint_path(cfg, "weights")
    ckpt = read_backbone_weights(path, f"{cfg['kind']} weights")
    for wrapper in ("weights", "state_dict", "model"):  # common wrappers around the state dict
        if wrapper in ckpt and isinstance(ckpt[wrapper], Mapping):
            ckpt = ckpt[wrapper]
            break
    tensors = {k: v for k, v in ckpt.items() if isinstance(v, Tensor)}
    if not tensors:
        raise BackboneError(f"{path}: no tensors in the {cfg['kind']} weights file; keys: {list(ckpt)[:8]}")
    try:
        return strip_prefixes(tensors), path
    except ValueError as exc:  # two keys that only differ by a wrapper prefix
        raise BackboneError(f"{path}: {exc}") from exc


def _random_build(cfg: Mapping[str, Any], build: Any) -> nn.Module:
    # A private RNG stream: an untrained build must not shift anyone else's random numbers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get("seed", 0)))
        return build()


# ----- EchoPrime (torchvision MViT-v2-S, 512-d embedding) ------------------------------------------------
class EchoPrimeBackbone(Backbone):
    """EchoPrime's video encoder (``echojepa.models.external.echoprime_encoder``; the released bare state
    dict loads into it strictly, with or without a ``module.`` prefix). ``output="embedding"`` gives the
    512-d embedding (what ``EchoPrime.embed_videos`` returns) as one token; ``output="tokens"`` gives the
    final normed MViT tokens [B, 1 + 8*7*7, 768] (class token first) for attentive probes. Input is fixed
    by the positional table: 16 x 224 x 224."""

    def __init__(
        self, model: nn.Module, output: str, name: str, preprocess: Preprocess, config: Mapping[str, Any]
    ) -> None:
        if output not in ("embedding", "tokens"):
            raise BackboneError(f"echoprime output must be 'embedding' or 'tokens', got {output!r}")
        dim = model.head[-1].out_features if output == "embedding" else model.head[-1].in_features
        super().__init__(name, "echoprime", preprocess, dim, config)
        self.model = model
        self.output = output
        # MViT's positional table fixes the input: token grid x patch-embedding stride (16 x 224 x 224)
        stride = model.conv_proj.stride
        grid = (model.pos_encoding.temporal_size, *model.pos_encoding.spatial_size)
        self.input_size = tuple(int(g * st) for g, st in zip(grid, stride))

    def encode(self, video: Tensor) -> Tensor:
        if tuple(video.shape[2:]) != self.input_size:
            raise ValueError(
                f"EchoPrime's MViT needs clips of {' x '.join(map(str, self.input_size))} (T x H x W), "
                f"got {tuple(video.shape[2:])}"
            )
        if self.output == "embedding":
            return self.model(video)[:, None]  # [B, 1, 512]
        m = self.model
        x = m.conv_proj(video).flatten(2).transpose(1, 2)  # [B, N, 96]
        x = m.pos_encoding(x)  # [B, 1 + N, 96] (class token prepended)
        thw = (m.pos_encoding.temporal_size, *m.pos_encoding.spatial_size)
        for block in m.blocks:
            x, thw = block(x, thw)
        return m.norm(x)  # [B, 1 + N', 768]

    def token_grid(self, clip_shape: Sequence[int]) -> None:
        """None: ``embedding`` is one pooled token, and ``tokens`` puts MViT's class token before its
        8 x 7 x 7 grid, so the N tokens are not a grid of the clip."""
        return None


def _build_echoprime(cfg: Mapping[str, Any]) -> Backbone:
    loaded = _weights_state(cfg)  # refuse a bad config before the slow init
    model = _random_build(cfg, lambda: echoprime_encoder(int(cfg.get("embed_dim", 512))))
    if loaded is not None:
        state, path = loaded
        _load_strict(model, state, what=f"EchoPrime encoder {path}")
    preprocess = _preprocess(cfg)
    name = str(cfg.get("name") or "echoprime")
    return EchoPrimeBackbone(model, str(cfg.get("output", "embedding")), name, preprocess, cfg).freeze()


# ----- PanEcho (per-frame ConvNeXt-T + temporal transformer) ---------------------------------------------
class PanEchoBackbone(Backbone):
    """PanEcho's video backbone (``echojepa.models.external.PanEchoVideoEncoder``). ``output="tokens"``
    gives the transformer's T tokens [B, T, 768] (see the encoder for what a token is under the
    released frame arrangement); ``output="embedding"`` their mean [B, 1, 768], which is what
    ``PanEcho(backbone_only=True)`` returns."""

    def __init__(
        self,
        model: PanEchoVideoEncoder,
        output: str,
        name: str,
        preprocess: Preprocess,
        config: Mapping[str, Any],
    ) -> None:
        if output not in ("embedding", "tokens"):
            raise BackboneError(f"panecho output must be 'embedding' or 'tokens', got {output!r}")
        super().__init__(name, "panecho", preprocess, model.encoder.n_features, config)
        self.model = model
        self.output = output

    def encode(self, video: Tensor) -> Tensor:
        tokens = self.model(video)  # [B, T, 768]
        return tokens.mean(dim=1, keepdim=True) if self.output == "embedding" else tokens

    def token_grid(self, clip_shape: Sequence[int]) -> tuple[int, int, int] | None:
        """(T, 1, 1) only for per-frame tokens (``upstream_frame_reshape: false``): token t is frame t,
        pooled over the whole image. With the upstream frame reshape (the default, what the released
        weights need) token k embeds the (channel, time) slots 3k..3k+2, i.e. colour channels of up to
        three different frames, so it is no frame and there is no grid: None. ``embedding``: None."""
        if self.output == "embedding" or self.model.upstream_frame_reshape:
            return None
        return int(clip_shape[1]), 1, 1


def _panecho_state(state: Mapping[str, Tensor], path: Path) -> dict[str, Tensor]:
    """The backbone entries of a PanEcho file: the released MultiTaskModel keeps the video backbone under
    ``encoder.`` beside 40 task heads ``<task>_head.1.{weight,bias}`` (not read); a backbone-only state
    dict (``PanEcho(backbone_only=True).state_dict()``) is used as is. Any other entry is refused."""
    if not any(k.startswith("encoder.encoder.") for k in state):
        return dict(state)
    backbone = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    other = sorted(k for k in state if not k.startswith("encoder.") and not _is_task_head(k))
    if other:
        raise BackboneMismatchError(
            f"{path}: PanEcho multi-task file has {len(other)} entries that are neither the backbone "
            f"(encoder.*) nor task heads (<task>_head.1.*): {', '.join(other[:8])}"
        )
    return backbone


def _is_task_head(key: str) -> bool:
    head, _, param = key.rpartition(".1.")
    return head.endswith("_head") and param in ("weight", "bias")


def _build_panecho(cfg: Mapping[str, Any]) -> Backbone:
    loaded = _weights_state(cfg)  # refuse a bad config before the slow init
    clip_len = int(cfg.get("clip_len", PANECHO_CLIP_LEN))
    preprocess = _preprocess(cfg)
    if preprocess.num_frames > clip_len:
        raise BackboneError(
            f"backbone {cfg.get('name', 'panecho')!r}: preprocess.num_frames {preprocess.num_frames} exceeds "
            f"clip_len {clip_len} (PanEcho's time encoding covers clip_len frames)"
        )
    # The released weights were trained on upstream's frame arrangement: on unless a config says otherwise.
    upstream = bool(cfg.get("upstream_frame_reshape", True))
    model = _random_build(
        cfg,
        lambda: PanEchoVideoEncoder(
            int(cfg.get("num_layers", 4)), int(cfg.get("num_heads", 8)), clip_len, upstream
        ),
    )
    if loaded is not None:
        state, path = loaded
        state = _panecho_state(state, path)
        pe = state.get("time_encoder.pe")
        if pe is not None and pe.shape[-1] == model.time_encoder.pe.shape[-1]:
            # A fixed sinusoid, not learned: upstream's hubconf drops the stored table and keeps the one
            # built for its clip_len, which is how any clip_len loads; so do we (the key must be there).
            state["time_encoder.pe"] = model.time_encoder.pe.detach().clone()
        _load_strict(model, state, what=f"PanEcho backbone {path}")
    config = {**cfg, "clip_len": clip_len, "upstream_frame_reshape": upstream}
    name = str(cfg.get("name") or "panecho")
    output = str(cfg.get("output", "tokens"))
    return PanEchoBackbone(model, output, name, preprocess, config).freeze()


# ----- entry points ---------------------------------------------------------------------------------------
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
    "checkpoint": lambda cfg: _build_pretrained_vit(cfg, default_repeat_layout=None),
    "vjepa2": lambda cfg: _build_pretrained_vit(cfg, default_repeat_layout=True),
    "random": _build_random_vit,
    "pixel_stats": _build_pixel_stats,
    "echoprime": _build_echoprime,
    "panecho": _build_panecho,
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
        backbone = _finish_vit(_vit_from_preset(arch, plain.get("rope_repeat_layout")), plain, arch)
    elif kind in ("echoprime", "panecho"):
        backbone = build_backbone({**plain, "weights": None, "allow_random": True})  # weights below
    else:
        backbone = build_backbone(plain)
    _load_strict(backbone, dict(state), what=what)
    return backbone
