import torch

from echojepa.models.rope import apply_rope, grid_positions, rope_axis_dim, rope_tables


def test_axis_dim_splits_head_into_three_even_chunks():
    assert rope_axis_dim(64) == 20  # 3 x 20 rotated + 4 plain
    assert rope_axis_dim(48) == 16
    assert rope_axis_dim(32) == 10


def test_grid_positions_follow_t_major_flattening():
    t, h, w = torch.meshgrid(torch.arange(3), torch.arange(4), torch.arange(5), indexing="ij")
    idx = torch.arange(60)
    pt, ph, pw = grid_positions(idx, (3, 4, 5))
    assert torch.equal(pt, t.flatten()) and torch.equal(ph, h.flatten()) and torch.equal(pw, w.flatten())


def test_position_zero_is_identity():
    x = torch.randn(1, 2, 1, 64)
    cos, sin = rope_tables(torch.tensor([0]), (2, 2, 2), 64)
    assert torch.allclose(apply_rope(x, cos, sin), x)


def test_leftover_channels_are_not_rotated():
    x = torch.randn(1, 2, 8, 64)
    cos, sin = rope_tables(torch.arange(8), (2, 2, 2), 64)
    out = apply_rope(x, cos, sin)
    assert torch.equal(out[..., 60:], x[..., 60:])
    assert not torch.allclose(out[..., :60], x[..., :60])


def test_interleaved_layout_is_a_rotation_of_each_pair():
    x = torch.randn(1, 1, 8, 48)
    cos, sin = rope_tables(torch.arange(8), (2, 2, 2), 48, repeat_layout=False)
    out = apply_rope(x, cos, sin)
    pair_norm = lambda y: y.unflatten(-1, (-1, 2)).norm(dim=-1)  # noqa: E731
    assert torch.allclose(pair_norm(out), pair_norm(x), atol=1e-5)


def test_interleaved_scores_depend_only_on_relative_position():
    q, k = torch.randn(1, 1, 1, 48), torch.randn(1, 1, 1, 48)
    grid = (4, 6, 6)

    def score(iq: int, ik: int) -> torch.Tensor:
        cq, sq = rope_tables(torch.tensor([iq]), grid, 48)
        ck, sk = rope_tables(torch.tensor([ik]), grid, 48)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum()

    # (t,h,w) (0,1,1)->(1,2,3) and (2,3,2)->(3,4,4): the same offset (1,1,2) at different places
    a = score(0 * 36 + 1 * 6 + 1, 1 * 36 + 2 * 6 + 3)
    b = score(2 * 36 + 3 * 6 + 2, 3 * 36 + 4 * 6 + 4)
    assert torch.allclose(a, b, atol=1e-5)


def test_repeat_layout_uses_tiled_frequencies_on_adjacent_pairs():
    d = 16
    x = torch.randn(1, 1, 1, 3 * d)
    pos = 3  # token (t=0, h=0, w=3): only the w chunk rotates
    cos, sin = rope_tables(torch.tensor([pos]), (1, 4, 4), 3 * d, repeat_layout=True)
    out = apply_rope(x, cos, sin)[0, 0, 0, 2 * d :]
    xw = x[0, 0, 0, 2 * d :]
    freqs = 10000.0 ** (-torch.arange(d // 2, dtype=torch.float32) / (d // 2))
    angle = pos * torch.cat([freqs, freqs])  # channel c uses frequency c mod d/2
    partner = torch.stack((-xw[1::2], xw[0::2]), dim=-1).flatten()
    assert torch.allclose(out, xw * angle.cos() + partner * angle.sin(), atol=1e-6)
    assert torch.equal(apply_rope(x, cos, sin)[..., : 2 * d], x[..., : 2 * d])


def test_batched_indices_give_per_sample_tables():
    idx = torch.tensor([[0, 5], [7, 9]])
    cos, sin = rope_tables(idx, (2, 2, 3), 48)
    assert cos.shape == (2, 1, 2, 48)
    cos1, _ = rope_tables(idx[1], (2, 2, 3), 48)
    assert torch.equal(cos[1], cos1[0])
