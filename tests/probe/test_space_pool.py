import pytest
import torch

from echojepa.probe.heads import AttentiveProbe
from echojepa.probe.multiview import MultiViewProbe
from echojepa.probe.space_pool import pool_padding, pool_space, pooled_grid, probe_grid
from echojepa.probe.training import bank_config

GRID = [2, 4, 4]  # (T', H', W')


def test_pool_space_averages_each_time_steps_cells_and_keeps_time_and_segments():
    tokens = torch.randn(3, 2 * 32, 5)  # two clip segments of a (2, 4, 4) grid
    pooled = pool_space(tokens, GRID, [2, 2])
    assert pooled.shape == (3, 2 * 2 * 4, 5)
    grid = tokens.view(3, 2, 2, 4, 4, 5)  # [B, S, T, H, W, D]
    # cell (segment 1, time 0, row 1, column 0) = mean of rows 2-3, columns 0-1 of that time step
    expected = grid[:, 1, 0, 2:4, 0:2].mean(dim=(1, 2))
    assert torch.allclose(pooled.view(3, 2, 2, 2, 2, 5)[:, 1, 0, 1, 0], expected)
    whole = pool_space(tokens, GRID, [1, 1]).view(3, 2, 2, 5)
    assert torch.allclose(whole, grid.mean(dim=(3, 4)))


def test_a_target_coarser_than_the_grid_keeps_it_and_a_target_that_does_not_divide_is_refused():
    assert pooled_grid([8, 1, 1], [2, 2]) == [8, 1, 1]
    assert pooled_grid([8, 14, 14], [2, 2]) == [8, 2, 2]
    with pytest.raises(ValueError, match="does not divide"):
        pooled_grid([8, 4, 4], [3, 3])
    assert probe_grid(None, [1, 1]) is None  # tokens that do not tile the clip are read as time already


def test_pooled_padding_covers_whole_clips_and_partial_cells_are_refused():
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[0, 32:] = True  # the second clip of item 0 is padding
    pooled = pool_padding(mask, GRID, [1, 1])
    assert pooled.tolist() == [[False, False, True, True], [False] * 4]
    mask[1, 3] = True
    with pytest.raises(ValueError, match="whole clips"):
        pool_padding(mask, GRID, [1, 1])


def test_spatially_pooled_attentive_probe_equals_the_probe_on_pre_pooled_tokens():
    torch.manual_seed(0)
    kw = dict(embed_dim=24, out_dim=1, depth=2, num_heads=4, in_dim=6, position="sincos")
    pooled = AttentiveProbe(**kw, token_grid=GRID, space_grid=[1, 1])
    plain = AttentiveProbe(**kw, token_grid=[2, 1, 1])
    plain.load_state_dict(pooled.state_dict())
    tokens = torch.randn(3, 2, 32, 6)  # [B, S, N, D]
    pre = tokens.view(3, 2, 2, 16, 6).mean(dim=3)  # [B, S, T', D]
    assert torch.allclose(pooled(tokens), plain(pre), atol=1e-6)
    assert pooled.attention_weights(tokens).shape == (3, 4, 4)  # 2 segments x 2 time steps


def test_multiview_probe_pools_each_slot_over_space():
    torch.manual_seed(0)
    kw = dict(embed_dim=24, out_dim=1, num_views=2, clips_per_view=1, depth=2, num_heads=4, in_dim=6)
    pooled = MultiViewProbe(**kw, token_grid=GRID, space_grid=[1, 1], position="sincos").eval()
    plain = MultiViewProbe(**kw, token_grid=[2, 1, 1], position="sincos").eval()
    plain.load_state_dict(pooled.state_dict())
    tokens, presence = torch.randn(3, 2, 32, 6), torch.ones(3, 2, dtype=torch.bool)
    pre = tokens.view(3, 2, 2, 16, 6).mean(dim=3)
    assert torch.allclose(pooled(tokens, presence=presence), plain(pre, presence=presence), atol=1e-6)


def test_task_space_grid_reaches_the_heads_of_that_task_only():
    probe = {"kind": "attentive", "head": {"depth": 4}, "task_space_grid": {"lvef": [1, 1]}}
    assert bank_config(probe, {"name": "lvef"}, None, [])["head"]["space_grid"] == [1, 1]
    assert "space_grid" not in bank_config(probe, {"name": "view"}, None, [])["head"]
