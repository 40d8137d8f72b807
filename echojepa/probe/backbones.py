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
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from echojepa.models.checkpoint import (
    load_reference_checkpoint,
    load_state_dict_strict,
    strip_prefixes,
)
from echojepa.models.presets import MODEL_PRESETS, build_encoder
from echojepa.models.vit import VisionTransformer
from echojepa.paths import CONF_DIR

BACKBONE_CONF_DIR = CONF_DIR / "backbone"
VECTOR_FEATURES = ("mean", "log_std", "log_amplitude", "frequency", "log_motion", "log_range")
BACKBONE_KINDS = ("checkpoint", "vjepa2", "random", "pixel_stats", "echoprime", "panecho")
# Config keys that locate weights or label a run but do not change what the backbone computes: left out
# of identity(), which covers the weights themselves through their digest.
_NON_IDENTITY_KEYS = ("name", "checkpoint", "weights", "allow_random")


# ----- preprocessing contract -------------------------------------------------------------------------
@dataclass(frozen=True)
class Preprocess:
    """What a backbone expects: 0-1 RGB clips of ``num_frames`` at ``img_size`` px, taken every
    ``frame_step`` source frames (or resampled to ``target_fps``), normalised with ``mean``/``std``;
    ``segments`` clips per video."""

    img_size: int
    num_frames: int
    frame_step: int | None
    target_fps: float | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    segments: int = 1

    def __post_init__(self) -> None:
        if self.img_size < 1 or self.num_frames < 1 or self.segments < 1:
            raise ValueError(f"Preprocess needs positive img_size/num_frames/segments, got {self}")
        if self.frame_step is None and self.target_fps is None:
            raise ValueError("Preprocess needs a frame_step or a target_fps")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ValueError(f"Preprocess needs 3 means and 3 positive stds, got {self.mean} / {self.std}")


def preprocess_from_config(
    cfg: Mapping[str, Any], img_size: int | None = None, num_frames: int | None = None
) -> Preprocess:
    """A Preprocess from a config mapping. ``value_scale`` (e.g. 255) says mean/std are given on a
    0-value_scale intensity scale (how EchoPrime publishes them); they are converted to 0-1.
    ``img_size``/``num_frames`` fill in keys that are missing or null (a ViT preset's clip size)."""
    known = {"img_size", "num_frames", "frame_step", "target_fps", "mean", "std", "segments", "value_scale"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"preprocess: unknown keys {unknown}; accepted: {sorted(known)}")
    scale = float(cfg.get("value_scale") or 1.0)
    size = cfg.get("img_size") if cfg.get("img_size") is not None else img_size
    frames = cfg.get("num_frames") if cfg.get("num_frames") is not None else num_frames
    missing = [k for k, v in (("img_size", size), ("num_frames", frames)) if v is None]
    missing += [k for k in ("mean", "std") if cfg.get(k) is None]
    if missing:
        raise ValueError(f"preprocess: missing {missing}")
    return Preprocess(
        img_size=int(size),  # type: ignore[arg-type]
        num_frames=int(frames),  # type: ignore[arg-type]
        frame_step=None if cfg.get("frame_step") is None else int(cfg["frame_step"]),
        target_fps=None if cfg.get("target_fps") is None else float(cfg["target_fps"]),
        mean=tuple(float(m) / scale for m in cfg["mean"]),  # type: ignore[arg-type]
        std=tuple(float(s) / scale for s in cfg["std"]),  # type: ignore[arg-type]
        segments=int(cfg.get("segments") or 1),
    )


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

    Subclasses implement ``encode``; the base class checks shapes, keeps the module in eval mode with
    ``requires_grad=False`` and provides ``identity()``.
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
                "preprocess": asdict(self.preprocess),
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


def _model_preset(model: Any) -> dict[str, Any]:
    """A model preset as a resolved plain dict (name from conf/model/, or an inline mapping)."""
    if model is None:
        raise ValueError("backbone config needs `model` (a preset name from conf/model/ or a preset mapping)")
    if isinstance(model, str):
        if model not in MODEL_PRESETS:
            raise ValueError(f"unknown model preset {model!r}; available: {sorted(MODEL_PRESETS)}")
        return dict(MODEL_PRESETS[model])
    return dict(model)


def _vit_from_preset(preset: Mapping[str, Any], rope_repeat_layout: bool | None) -> VisionTransformer:
    overrides = {} if rope_repeat_layout is None else {"rope_repeat_layout": bool(rope_repeat_layout)}
    return build_encoder(preset, **overrides)


def _checkpoint_path(cfg: Mapping[str, Any], key: str) -> Path:
    value = cfg.get(key)
    if value in (None, "", "???"):
        raise ValueError(
            f"backbone {cfg.get('name', cfg['kind'])!r}: `{key}` is not set (path to a weights file)"
        )
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"backbone {cfg.get('name', cfg['kind'])!r}: weights file not found: {path}")
    return path


def _encoder_state(
    ckpt: Mapping[str, Any], which: str, path: Path
) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    """(encoder state without wrapper prefixes, Lightning hyper-parameters or None) from either layout."""
    if "state_dict" in ckpt and isinstance(ckpt["state_dict"], Mapping):  # a Lightning .ckpt
        prefix = f"{which}."
        state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        if not state:
            modules = sorted({k.split(".", 1)[0] for k in ckpt["state_dict"]})
            raise ValueError(
                f"{path}: Lightning checkpoint has no {which!r} weights; modules present: {modules}"
            )
        hparams = ckpt.get("hyper_parameters")
        return strip_prefixes(state), dict(hparams) if isinstance(hparams, Mapping) else None
    if which not in ckpt or not isinstance(ckpt[which], Mapping):
        raise ValueError(f"{path}: no model entry {which!r}; top-level keys: {sorted(map(str, ckpt))}")
    return strip_prefixes(ckpt[which]), None


def _build_pretrained_vit(cfg: Mapping[str, Any], default_repeat_layout: bool | None) -> Backbone:
    path = _checkpoint_path(cfg, "checkpoint")
    which = str(cfg.get("which") or "target_encoder")
    state, hparams = _encoder_state(load_reference_checkpoint(path), which, path)
    if cfg.get("model") is None and hparams is not None and "encoder" in hparams:
        # A Lightning checkpoint of our pretraining records its own encoder config.
        preset = {
            "img_size": hparams["img_size"],
            "num_frames": hparams["num_frames"],
            "encoder": dict(hparams["encoder"]),
        }
    else:
        preset = _model_preset(cfg.get("model"))
    rope = cfg.get("rope_repeat_layout", default_repeat_layout)
    encoder = _vit_from_preset(preset, rope)
    load_state_dict_strict(encoder, state, what=f"{which} of {path}")
    return _finish_vit(encoder, cfg, preset)


def _finish_vit(encoder: VisionTransformer, cfg: Mapping[str, Any], preset: Mapping[str, Any]) -> Backbone:
    preprocess = preprocess_from_config(
        cfg.get("preprocess") or {}, img_size=preset.get("img_size"), num_frames=preset.get("num_frames")
    )
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


class PixelStatsBackbone(Backbone):
    """Per cell of a g x g grid over the (channel-averaged) clip, the cell's mean-intensity time series
    s(t) gives one token of ``PIXEL_STAT_FEATURES``: temporal mean and std, amplitude and frequency
    (cycles per frame) of its strongest non-DC Fourier component, mean |s(t+1) - s(t)|, max - min, and
    the cell's normalised row/column (the probe has no positional embedding of its own).

    EF lives in how much the cavity's area changes over the cycle; the cell time series' std, dominant
    amplitude and range measure exactly that, so this floor is not blind to the label.
    Expects 0-1 intensities (its preprocess has mean 0, std 1).
    """

    def __init__(
        self, grid: int, name: str, preprocess: Preprocess, config: Mapping[str, Any], layout: str = "cells"
    ) -> None:
        if layout not in ("cells", "vector"):
            raise ValueError(f"pixel_stats layout must be 'cells' or 'vector', got {layout!r}")
        dim = len(PIXEL_STAT_FEATURES) if layout == "cells" else grid * grid * len(VECTOR_FEATURES)
        super().__init__(name, "pixel_stats", preprocess, dim, config)
        if grid < 1:
            raise ValueError(f"pixel_stats grid must be >= 1, got {grid}")
        self.grid = int(grid)
        self.layout = layout

    def encode(self, video: Tensor) -> Tensor:
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
    preprocess = preprocess_from_config(cfg.get("preprocess") or {})
    return PixelStatsBackbone(
        int(cfg.get("grid", 8)),
        str(cfg.get("name") or "pixel_stats"),
        preprocess,
        cfg,
        layout=str(cfg.get("layout", "cells")),
    ).freeze()


# ----- EchoPrime (torchvision MViT-v2-S, 512-d embedding) ------------------------------------------------
class EchoPrimeBackbone(Backbone):
    """EchoPrime's video encoder: torchvision ``mvit_v2_s`` with ``head[-1] = Linear(768, 512)`` (the
    released encoder state dict loads into it strictly). ``output="embedding"`` gives the 512-d
    embedding as one token; ``output="tokens"`` gives the final normed MViT tokens [B, 1 + 8*7*7, 768]
    (class token first) for attentive probes. Input is fixed by the positional table: 16 x 224 x 224."""

    def __init__(
        self, model: nn.Module, output: str, name: str, preprocess: Preprocess, config: Mapping[str, Any]
    ) -> None:
        if output not in ("embedding", "tokens"):
            raise ValueError(f"echoprime output must be 'embedding' or 'tokens', got {output!r}")
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


def _weights_state(cfg: Mapping[str, Any]) -> dict[str, Tensor] | None:
    """The user-supplied weights file as a state dict; None only for an explicit random build."""
    if cfg.get("weights") in (None, ""):
        if not cfg.get("allow_random", False):
            raise ValueError(
                f"backbone {cfg.get('name', cfg['kind'])!r}: `weights` is null; set a weights file, or "
                "`allow_random: true` to build an untrained encoder on purpose (tests)"
            )
        return None
    path = _checkpoint_path(cfg, "weights")
    ckpt = load_reference_checkpoint(path)
    for wrapper in ("weights", "state_dict", "model"):  # common wrappers around the state dict
        if wrapper in ckpt and isinstance(ckpt[wrapper], Mapping):
            ckpt = ckpt[wrapper]
            break
    return strip_prefixes({k: v for k, v in ckpt.items() if isinstance(v, Tensor)})


def _build_echoprime(cfg: Mapping[str, Any]) -> Backbone:
    from torchvision.models.video import mvit_v2_s

    state = _weights_state(cfg)  # refuse a bad config before the slow init
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get("seed", 0)))
        model = mvit_v2_s(weights=None)
        model.head[-1] = nn.Linear(model.head[-1].in_features, int(cfg.get("embed_dim", 512)))
    if state is not None:
        load_state_dict_strict(model, state, what=f"EchoPrime encoder {cfg['weights']}")
    preprocess = preprocess_from_config(cfg.get("preprocess") or {})
    name = str(cfg.get("name") or "echoprime")
    return EchoPrimeBackbone(model, str(cfg.get("output", "embedding")), name, preprocess, cfg).freeze()


# ----- PanEcho (per-frame ConvNeXt-T + temporal transformer) ---------------------------------------------
class _FrameEncoder(nn.Module):
    """ConvNeXt-Tiny up to its pre-logit features (classifier's last Linear removed): [B, 768]."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import convnext_tiny

        self.model = convnext_tiny(weights=None)
        self.n_features = self.model.classifier[-1].in_features
        self.model.classifier[-1] = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class _TimeEncoding(nn.Module):
    """Fixed sinusoidal table over frame positions; stored as a frozen parameter ``pe`` [1, L, D]
    (that is how PanEcho's released state dict carries it)."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(pos * div)
        pe[0, :, 1::2] = torch.cos(pos * div)
        self.pe = nn.Parameter(pe, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"PanEcho's time encoding covers {self.pe.shape[1]} frames, got {x.shape[1]}")
        return x + self.pe[:, : x.shape[1]]


class PanEchoVideoEncoder(nn.Module):
    """PanEcho's video backbone, parameter names as in its release (under ``encoder.``):
    ``encoder.model.*`` (ConvNeXt-T), ``time_encoder.pe``, ``transformer.layers.N.*`` (post-norm, ReLU,
    feed-forward width = 768). Returns per-frame tokens [B, T, 768] (PanEcho itself mean-pools them)."""

    def __init__(self, num_layers: int = 4, num_heads: int = 8, clip_len: int = 16) -> None:
        super().__init__()
        self.encoder = _FrameEncoder()
        dim = self.encoder.n_features
        layer = nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=num_heads,
            dim_feedforward=dim,
            dropout=0.0,
            activation="relu",
            batch_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.time_encoder = _TimeEncoding(dim, clip_len)

    def forward(self, video: Tensor) -> Tensor:
        b, c, t, h, w = video.shape
        frames = video.transpose(1, 2).reshape(b * t, c, h, w)  # [B*T, C, H, W]
        feats = self.encoder(frames).reshape(b, t, -1)  # [B, T, 768]
        return self.transformer(self.time_encoder(feats))  # [B, T, 768]


class PanEchoBackbone(Backbone):
    def __init__(
        self, model: PanEchoVideoEncoder, name: str, preprocess: Preprocess, config: Mapping[str, Any]
    ) -> None:
        super().__init__(name, "panecho", preprocess, model.encoder.n_features, config)
        self.model = model

    def encode(self, video: Tensor) -> Tensor:
        return self.model(video)  # [B, T, 768]


def _panecho_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    # The release is a MultiTaskModel: the video backbone sits under `encoder.`, task heads beside it.
    if any(k.startswith("encoder.encoder.") for k in state):
        return {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    return dict(state)


def _build_panecho(cfg: Mapping[str, Any]) -> Backbone:
    state = _weights_state(cfg)  # refuse a bad config before the slow init
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get("seed", 0)))
        model = PanEchoVideoEncoder(
            int(cfg.get("num_layers", 4)), int(cfg.get("num_heads", 8)), int(cfg.get("clip_len", 16))
        )
    if state is not None:
        load_state_dict_strict(model, _panecho_state(state), what=f"PanEcho backbone {cfg['weights']}")
    preprocess = preprocess_from_config(cfg.get("preprocess") or {})
    return PanEchoBackbone(model, str(cfg.get("name") or "panecho"), preprocess, cfg).freeze()


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
        raise ValueError(f"{path}: no such backbone preset; known: {known}")
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
        raise ValueError(f"unknown backbone kind {kind!r}; expected one of {list(BACKBONE_KINDS)}")
    return _BUILDERS[kind](plain)
