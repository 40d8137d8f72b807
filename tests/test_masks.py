import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from echojepa.masks import (
    MaskGroupConfig,
    MultiBlockMaskGenerator,
    TubeMaskGenerator,
    build_mask_generator,
)
from echojepa.paths import CONF_DIR

SHORT = MaskGroupConfig(spatial_scale=0.15, temporal_scale=1.0, aspect_ratio=(0.75, 1.5), num_blocks=8)
LONG = MaskGroupConfig(spatial_scale=0.70, temporal_scale=1.0, aspect_ratio=(0.75, 1.5), num_blocks=2)
GRID = (8, 16, 16)
N = 8 * 16 * 16


def test_masked_fractions_match_reference_groups():
    gen = MultiBlockMaskGenerator(GRID, [SHORT, LONG], seed=0)
    fractions = np.array([[tgt.shape[1] / N for _, tgt in gen(1)] for _ in range(200)]).mean(0)
    # measured with seed 0: 0.623 (short-range), 0.813 (long-range); reference ~0.62 / ~0.81
    assert fractions[0] == pytest.approx(0.62, abs=0.03)
    assert fractions[1] == pytest.approx(0.81, abs=0.03)


def test_indices_are_valid_sorted_unique_and_disjoint():
    gen = MultiBlockMaskGenerator(GRID, [SHORT, LONG], seed=1)
    for ctx, tgt in gen(6):
        assert ctx.dtype == torch.int64 and tgt.dtype == torch.int64
        assert ctx.shape[0] == tgt.shape[0] == 6 and ctx.shape[1] > 0
        for c, t in zip(ctx.tolist(), tgt.tolist()):
            assert c == sorted(set(c)) and t == sorted(set(t))
            assert min(c + t) >= 0 and max(c + t) < N
            assert not set(c) & set(t)


def test_whole_clip_blocks_mask_the_same_positions_at_every_time_step():
    gen = MultiBlockMaskGenerator(GRID, [SHORT], seed=2)
    tgt = gen(1)[0][1][0]
    grid = torch.zeros(N, dtype=torch.bool)
    grid[tgt] = True
    grid = grid.view(GRID)
    assert torch.equal(grid, grid[:1].expand_as(grid))


def test_block_size_is_shared_across_the_batch():
    one_block = MaskGroupConfig(spatial_scale=0.2, temporal_scale=0.5, aspect_ratio=(0.5, 2.0), num_blocks=1)
    gen = MultiBlockMaskGenerator(GRID, [one_block], seed=3)
    for _ in range(5):
        _, tgt = gen(8)[0]
        extents = set()
        for row in tgt:
            t, rem = row // 256, row % 256
            h, w = rem // 16, rem % 16
            size = tuple(int(a.max() - a.min() + 1) for a in (t, h, w))
            assert np.prod(size) == len(row)  # one solid box
            extents.add(size)
        assert len(extents) == 1 and extents.pop()[0] == 4


def test_rows_are_truncated_to_the_batch_minimum(monkeypatch):
    gen = MultiBlockMaskGenerator((1, 2, 4), [SHORT], seed=0)
    planned = iter([np.array([1, 1, 0, 0, 1, 0, 0, 0], bool), np.array([0, 1, 1, 1, 0, 1, 1, 0], bool)])
    monkeypatch.setattr(gen, "_sample_target", lambda rng, size, n: next(planned))
    ctx, tgt = gen(2)[0]
    assert tgt.tolist() == [[0, 1, 4], [1, 2, 3]]  # 3 and 5 masked -> 3, lowest indices kept
    assert ctx.tolist() == [[2, 3, 5], [0, 4, 7]]  # 5 and 3 context -> 3


def test_sample_with_empty_context_is_redrawn():
    # four 1x1 blocks on a 2x2 frame cover it all about one draw in eleven
    tiny = MaskGroupConfig(spatial_scale=0.25, temporal_scale=1.0, aspect_ratio=(1.0, 1.0), num_blocks=4)
    gen = MultiBlockMaskGenerator((1, 2, 2), [tiny], seed=0)
    for _ in range(10):
        ctx, tgt = gen(16)[0]
        assert ctx.shape[1] >= 1


def test_group_that_always_covers_everything_is_refused():
    full = MaskGroupConfig(spatial_scale=1.0, temporal_scale=1.0, aspect_ratio=(1.0, 1.0), num_blocks=1)
    with pytest.raises(ValueError, match="left no context"):
        MultiBlockMaskGenerator((2, 4, 4), [full])(1)


def test_same_seed_same_masks_and_other_seed_other_masks():
    a, b, c = (MultiBlockMaskGenerator(GRID, [SHORT, LONG], seed=s) for s in (5, 5, 6))
    for _ in range(3):
        ma, mb, mc = a(4), b(4), c(4)
        assert all(torch.equal(x, y) for pa, pb in zip(ma, mb) for x, y in zip(pa, pb))
    assert not all(torch.equal(x, y) for pa, pc in zip(ma, mc) for x, y in zip(pa, pc))


@pytest.mark.parametrize(
    "make",
    [
        lambda: MultiBlockMaskGenerator(GRID, [SHORT, LONG], seed=3),
        lambda: TubeMaskGenerator(GRID, ratio=0.9, seed=3),
    ],
)
def test_data_parallel_ranks_draw_different_masks_and_rank_zero_keeps_the_single_device_draws(make):
    single, rank0, rank1 = make(), make(), make()
    rank0.stream, rank1.stream = 0, 1

    def flat(masks):
        groups = masks if isinstance(masks[0], tuple | list) else [masks]
        return [t for g in groups for t in g]

    a, b, c = flat(single(4)), flat(rank0(4)), flat(rank1(4))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, c))


def test_state_round_trip_resumes_the_same_mask_sequence():
    gen = MultiBlockMaskGenerator(GRID, [SHORT, LONG], seed=7)
    for _ in range(3):
        gen(4)
    state = gen.state_dict()
    expected = [gen(4) for _ in range(2)]
    resumed = MultiBlockMaskGenerator(GRID, [SHORT, LONG], seed=0)
    resumed.load_state_dict(state)
    for want, got in zip(expected, [resumed(4) for _ in range(2)]):
        assert all(torch.equal(x, y) for pw, pg in zip(want, got) for x, y in zip(pw, pg))


def test_tube_mask_is_the_same_spatial_mask_at_every_time_step():
    gen = TubeMaskGenerator((4, 5, 6), ratio=0.9, seed=0)
    keep, masked = gen(3)
    assert keep.shape == (3, 4 * 3) and masked.shape == (3, 4 * 27)
    for k, m in zip(keep, masked):
        assert torch.equal(torch.sort(torch.cat([k, m])).values, torch.arange(120))
        assert torch.equal(k, torch.sort(k).values)
        frames = k.view(4, 3) - torch.arange(4)[:, None] * 30
        assert torch.equal(frames, frames[:1].expand_as(frames))
    assert not torch.equal(keep[0], keep[1])


def test_tube_mask_is_seeded_and_resumable():
    a, b = TubeMaskGenerator((2, 8, 8), seed=1), TubeMaskGenerator((2, 8, 8), seed=99)
    a(2)
    b.load_state_dict(a.state_dict())
    ka, ma = a(2)
    kb, mb = b(2)
    assert torch.equal(ka, kb) and torch.equal(ma, mb)
    with pytest.raises(ValueError, match="masks none or all"):
        TubeMaskGenerator((2, 2, 2), ratio=0.99)


def test_generators_build_from_conf_files():
    multi = build_mask_generator(OmegaConf.load(CONF_DIR / "mask" / "multiblock.yaml"), GRID, seed=0)
    assert isinstance(multi, MultiBlockMaskGenerator)
    assert [g.num_blocks for g in multi.groups] == [8, 2]
    assert [g.spatial_scale for g in multi.groups] == [0.15, 0.70]
    groups = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "mask" / "multiblock.yaml").groups)
    assert [MaskGroupConfig(**g) for g in groups] == multi.groups  # entries are exactly the fields
    tube = build_mask_generator(OmegaConf.load(CONF_DIR / "mask" / "tube.yaml"), GRID, seed=0)
    assert isinstance(tube, TubeMaskGenerator) and tube.ratio == 0.9
    with pytest.raises(ValueError, match="mask: unknown kind"):
        build_mask_generator({"kind": "random"}, GRID)


def test_invalid_group_config_is_refused():
    with pytest.raises(ValueError):
        MaskGroupConfig(spatial_scale=1.5, temporal_scale=1.0, aspect_ratio=(0.75, 1.5), num_blocks=1)
    with pytest.raises(ValueError):
        MaskGroupConfig(spatial_scale=0.5, temporal_scale=1.0, aspect_ratio=(1.5, 0.75), num_blocks=1)
