"""The EchoPrime and PanEcho video encoders users compare against, built from weights files as users have
them (torchvision is built with ``weights=None``; nothing is downloaded)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from echojepa.data.preprocess import Preprocess
from echojepa.models.checkpoint import strip_prefixes
from echojepa.models.external import PANECHO_CLIP_LEN, PanEchoVideoEncoder, echoprime_encoder
from echojepa.probe.backbone_base import (
    Backbone,
    BackboneError,
    BackboneMismatchError,
    backbone_preprocess,
    config_weights_path,
    load_backbone_state,
    read_backbone_weights,
)


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
    path = config_weights_path(cfg, "weights")
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


def build_echoprime(cfg: Mapping[str, Any]) -> Backbone:
    loaded = _weights_state(cfg)  # refuse a bad config before the slow init
    model = _random_build(cfg, lambda: echoprime_encoder(int(cfg.get("embed_dim", 512))))
    if loaded is not None:
        state, path = loaded
        load_backbone_state(model, state, what=f"EchoPrime encoder {path}")
    preprocess = backbone_preprocess(cfg)
    name = str(cfg.get("name") or "echoprime")
    return EchoPrimeBackbone(model, str(cfg.get("output", "embedding")), name, preprocess, cfg).freeze()


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


def build_panecho(cfg: Mapping[str, Any]) -> Backbone:
    loaded = _weights_state(cfg)  # refuse a bad config before the slow init
    clip_len = int(cfg.get("clip_len", PANECHO_CLIP_LEN))
    preprocess = backbone_preprocess(cfg)
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
        load_backbone_state(model, state, what=f"PanEcho backbone {path}")
    config = {**cfg, "clip_len": clip_len, "upstream_frame_reshape": upstream}
    name = str(cfg.get("name") or "panecho")
    output = str(cfg.get("output", "tokens"))
    return PanEchoBackbone(model, output, name, preprocess, config).freeze()
