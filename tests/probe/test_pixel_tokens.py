"""Pixel statistics as a space-time token sequence: one token per tubelet (time chunk x grid cell), on the
demo encoders' token grid, each token seeing only its own frames and cell."""

from __future__ import annotations

import torch

from echojepa.probe.backbones import build_backbone, load_backbone_config
from echojepa.probe.pixel_stats import PIXEL_TOKEN_FEATURES

COL = {name: i for i, name in enumerate(PIXEL_TOKEN_FEATURES)}


def _clip(seed: int = 0, frames: int = 16, size: int = 64) -> torch.Tensor:
    return torch.rand(1, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def test_default_pixel_stats_are_tokens_on_the_demo_encoders_grid():
    stats = build_backbone(load_backbone_config("pixel_stats"))
    vit = build_backbone(load_backbone_config("random_vit"))  # cpu_tiny, the demo encoders' architecture
    size = stats.preprocess.img_size
    assert (size, stats.preprocess.num_frames) == (vit.preprocess.img_size, vit.preprocess.num_frames)
    clip = (3, stats.preprocess.num_frames, size, size)
    assert stats.token_grid(clip) == vit.token_grid(clip) == (8, 4, 4)
    tokens = stats(_clip(size=size))
    assert tokens.shape == (1, 8 * 4 * 4, len(PIXEL_TOKEN_FEATURES))


def test_a_token_sees_only_its_own_tubelet_and_cell():
    stats = build_backbone({**load_backbone_config("pixel_stats"), "grid": 4, "tubelet": 2})
    clip = _clip()
    changed = clip.clone()
    changed[:, :, 4:6, :16, 16:32] += 0.5  # frames 4-5 (tubelet 2), cell (row 0, column 1)
    diff = (stats(changed) - stats(clip)).abs().amax(dim=-1).view(8, 4, 4)
    assert diff[2, 0, 1] > 0
    diff[2, 0, 1] = 0
    assert diff.max() == 0  # nothing else moved: no statistic spans the clip or the frame


def test_token_features_read_mean_motion_change_and_position():
    stats = build_backbone({**load_backbone_config("pixel_stats"), "grid": 2, "tubelet": 2})
    clip = torch.zeros(1, 3, 4, 8, 8)
    clip[:, :, 1] = 0.4  # frame 1 brighter everywhere: tubelet 0 changes by +0.4, moves by 0.4 per pixel
    clip[:, :, 2:, :4, :4] = 0.2  # tubelet 1, cell (0, 0): constant 0.2
    tokens = stats(clip)[0].view(2, 2, 2, -1)  # [T', row, column, features]
    torch.testing.assert_close(tokens[0, 1, 1, COL["mean"]], torch.tensor(0.2))
    torch.testing.assert_close(tokens[0, 0, 0, COL["motion"]], torch.tensor(0.4))
    torch.testing.assert_close(tokens[0, 0, 0, COL["change"]], torch.tensor(0.4))
    torch.testing.assert_close(tokens[1, 0, 0, COL["mean"]], torch.tensor(0.2))
    assert tokens[1, 0, 0, COL["motion"]] == 0 and tokens[1, 0, 0, COL["spatial_std"]] == 0
    torch.testing.assert_close(
        tokens[1, 0, 1, [COL["time"], COL["row"], COL["col"]]], torch.tensor([0.75, 0.25, 0.75])
    )
