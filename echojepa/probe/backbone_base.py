"""The interface every frozen probe backbone implements, and what building any of them shares: user
errors, weights files, the preprocess block, strict loading and the weights digest.

Every backbone is an ``nn.Module`` that maps a normalised clip ``[B, C, T, H, W]`` to tokens
``[B, N, D]`` (``N = 1`` for pooled encoders), declares what input it expects (``preprocess``), stays in
eval mode with no gradients, and has a stable ``identity()`` (kind + architecture + weights digest) that
the feature cache uses as part of its key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from echojepa.data.preprocess import Preprocess, preprocess_from_config
from echojepa.io.weights import read_weights_file
from echojepa.models.checkpoint import CheckpointMismatchError, load_state_dict_strict
from echojepa.probe.errors import ProbeInputError

# Config keys that locate weights or label a run but do not change what the backbone computes: left out
# of identity(), which covers the weights themselves through their digest.
_NON_IDENTITY_KEYS = ("name", "checkpoint", "weights", "allow_random")


class BackboneError(ProbeInputError):
    """A backbone cannot be built from its config or weights file. The message is one line naming the
    file (or the config key) and the reason; ``echojepa-probe`` prints it as is and exits 2."""


class BackboneMismatchError(BackboneError, CheckpointMismatchError):
    """A weights file whose state dict does not fit the backbone (missing, unexpected, mis-shaped keys)."""


def read_backbone_weights(path: Path, what: str = "backbone weights") -> dict[str, Any]:
    """A weights file as a dict (weights-only); BackboneError naming the file when it cannot be used."""
    return read_weights_file(path, what, error=BackboneError)


def backbone_preprocess(cfg: Mapping[str, Any], **fill: Any) -> Preprocess:
    """The config's ``preprocess`` block through the one reader; a bad block is a BackboneError."""
    try:
        return preprocess_from_config(cfg.get("preprocess") or {}, **fill)
    except ValueError as exc:
        raise BackboneError(f"backbone {cfg.get('name', cfg.get('kind'))!r}: {exc}") from exc


def load_backbone_state(module: nn.Module, state: Mapping[str, Tensor], what: str) -> None:
    """load_state_dict_strict, its multi-line report folded into one line (BackboneMismatchError)."""
    try:
        load_state_dict_strict(module, state, what=what)
    except CheckpointMismatchError as exc:
        raise BackboneMismatchError("; ".join(line.strip() for line in str(exc).splitlines())) from exc


def config_weights_path(cfg: Mapping[str, Any], key: str) -> Path:
    value = cfg.get(key)
    if value in (None, "", "???"):
        raise BackboneError(
            f"backbone {cfg.get('name', cfg['kind'])!r}: `{key}` is not set (path to a weights file)"
        )
    return Path(str(value)).expanduser()


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

    # whether a reduced-precision feature pass (feature_precision: bf16-mixed) changes what this backbone
    # computes; a non-learned floor that computes statistics in float32 says False, and its features are
    # then keyed and recorded as float32 (echojepa/probe/context.py)
    reduced_precision_forward: bool = True

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
