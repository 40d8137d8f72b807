"""The released comparison video encoders, rebuilt with their own parameter names so that their release
files load strictly: EchoPrime (echonet/EchoPrime) and PanEcho (CarDS-Yale/PanEcho).

torchvision is always built with ``weights=None``: nothing is downloaded. The key/shape tables these
modules must match are recorded in tests/fixtures/{echoprime,panecho}_layout.json (read from each
project's own code), and the tests build their state dicts from those tables, not from these modules.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# PanEcho's release: a FrameTransformer with a 16-frame time encoding (hubconf clip_len=16).
PANECHO_CLIP_LEN = 16


def echoprime_encoder(embed_dim: int = 512) -> nn.Module:
    """EchoPrime's video encoder: torchvision ``mvit_v2_s`` with ``head[-1] = Linear(768, embed_dim)``
    (``echo_prime/model.py``); its release ``echo_prime_encoder.pt`` is this module's bare state dict."""
    from torchvision.models.video import mvit_v2_s

    model = mvit_v2_s(weights=None)
    model.head[-1] = nn.Linear(model.head[-1].in_features, int(embed_dim))
    return model


class PanEchoFrameEncoder(nn.Module):
    """PanEcho's ``ImageEncoder('convnext_tiny')``: ConvNeXt-T with its last Linear replaced by Identity,
    so each image gives its 768-d pre-logit features (after the classifier's LayerNorm)."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import convnext_tiny

        self.model = convnext_tiny(weights=None)
        self.n_features = self.model.classifier[-1].in_features
        self.model.classifier[-1] = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class PanEchoTimeEncoding(nn.Module):
    """PanEcho's fixed sinusoidal ``PositionalEncoding`` over frame positions, stored (as upstream) as a
    frozen parameter ``pe`` [1, max_len, D] and added to the frame features (its dropout is 0)."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.pe = nn.Parameter(sinusoid_table(dim, max_len), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"PanEcho's time encoding covers {self.pe.shape[1]} frames, got {x.shape[1]}")
        return x + self.pe[:, : x.shape[1]]


def sinusoid_table(dim: int, max_len: int) -> Tensor:
    """[1, max_len, dim]: sin on even, cos on odd features, as PanEcho's PositionalEncoding computes it."""
    pos = torch.arange(max_len)[:, None]  # int64 times float32 below, as upstream
    div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    pe = torch.zeros(1, max_len, dim)
    pe[0, :, 0::2] = torch.sin(pos * div)
    pe[0, :, 1::2] = torch.cos(pos * div)
    return pe


def panecho_frames(video: Tensor, upstream_frame_reshape: bool) -> Tensor:
    """The images PanEcho's ConvNeXt sees, [B*T, C, H, W], from a clip [B, C, T, H, W].

    ``upstream_frame_reshape=True`` is what upstream ``FrameTransformer.forward`` does and what the
    released weights were trained on: ``x.reshape(b*l, c, h, w)`` straight on the channel-first clip,
    without moving the time axis first. Image k of a clip then holds the (channel, time) slots
    3k, 3k+1, 3k+2 of the flattened channel-major (C, T) plane: with T=16, image 0 = (R,t0),(R,t1),(R,t2)
    and image 5 = (R,t15),(G,t0),(G,t1). ``False`` gives the per-frame arrangement (image t = frame t
    in RGB), i.e. ``video.transpose(1, 2)`` first."""
    b, c, t, h, w = video.shape
    if upstream_frame_reshape:
        return video.reshape(b * t, c, h, w)
    return video.transpose(1, 2).reshape(b * t, c, h, w)


class PanEchoVideoEncoder(nn.Module):
    """PanEcho's video backbone (``hubconf.PanEcho(backbone_only=True)``, a ``FrameTransformer``) with its
    parameter names: ``encoder.model.*`` (ConvNeXt-T), ``time_encoder.pe``, ``transformer.layers.N.*``
    (post-norm, ReLU, feed-forward width 768, no dropout). Returns the transformer output [B, T, 768];
    upstream's embedding is its mean over T.

    With ``upstream_frame_reshape`` (see ``panecho_frames``), token k is *not* frame k: it is the
    ConvNeXt embedding of the image made of slots 3k..3k+2 of the (channel, time) plane, placed at time
    position k by the time encoding. That is what the released weights expect; per-frame tokens only
    mean "frame t" with the option off (a model trained that way)."""

    def __init__(
        self,
        num_layers: int = 4,
        num_heads: int = 8,
        clip_len: int = PANECHO_CLIP_LEN,
        upstream_frame_reshape: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = PanEchoFrameEncoder()
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
        self.time_encoder = PanEchoTimeEncoding(dim, clip_len)
        self.upstream_frame_reshape = bool(upstream_frame_reshape)

    def forward(self, video: Tensor) -> Tensor:
        b, _, t, _, _ = video.shape
        frames = panecho_frames(video, self.upstream_frame_reshape)  # [B*T, C, H, W]
        feats = self.encoder(frames).reshape(b, t, -1)  # [B, T, 768]
        return self.transformer(self.time_encoder(feats))  # [B, T, 768]
