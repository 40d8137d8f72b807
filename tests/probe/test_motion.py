import math

import pytest
import torch

from echojepa.probe.bank import ProbeBank, grid_specs
from echojepa.probe.fit import train_probe_bank
from echojepa.probe.heads import AttentiveProbe
from echojepa.probe.motion import motion_code, motion_tokens
from echojepa.probe.position import spacetime_code
from echojepa.probe.task import ProbeTask
from echojepa.probe.training import bank_config

GRID = [4, 2, 2]  # (T', H', W')


def test_motion_tokens_are_each_places_std_over_time_per_segment():
    content = torch.randn(3, 2 * 16, 5)  # two segments of a (4, 2, 2) grid
    motion = motion_tokens(content, GRID)
    assert motion.shape == (3, 2 * 4, 5)
    grid = content.view(3, 2, 4, 4, 5)  # [B, S, T', h*w, D]
    for s in range(2):
        for p in range(4):
            expected = grid[:, s, :, p].std(dim=1, unbiased=False)
            torch.testing.assert_close(motion[:, s * 4 + p], expected)
    assert motion_tokens(content, None).shape == (3, 1, 5)  # no grid: one segment read as time


def test_motion_tokens_sit_at_negative_times_apart_from_every_content_token():
    periods = (8.0, 1 / 32)
    content = spacetime_code(2 * 16, GRID, 48, periods)  # [32, 48]
    motion = motion_code(2, GRID, 48, periods)  # [8, 48]
    assert motion.shape == (8, 48)
    distance = torch.cdist(motion, content)
    assert float(distance.min()) > 0.1  # no motion token shares a content token's code
    assert len({tuple(r.tolist()) for r in motion}) == 8  # and each segment's places differ


def test_a_padded_segment_pads_its_motion_tokens_and_does_not_change_the_output():
    torch.manual_seed(0)
    head = AttentiveProbe(
        embed_dim=24,
        out_dim=1,
        depth=2,
        num_heads=4,
        in_dim=6,
        token_grid=GRID,
        position="sincos",
        motion=True,
    ).eval()
    tokens = torch.randn(2, 2, 16, 6)
    mask = torch.zeros(2, 32, dtype=torch.bool)
    mask[0, 16:] = True
    out = head(tokens, mask)
    tokens[0, 1] = float("nan")  # whatever a padded clip holds
    torch.testing.assert_close(head(tokens, mask), out)
    assert head.attention_weights(tokens, mask).shape == (2, 4, 32)  # content tokens only


def _amplitude_batches(n_batches: int, seed: int) -> list[dict]:
    """Tokens whose every place swings by one amplitude (the target) at a random phase, along a fixed
    channel direction, around a fixed per-place content vector (what a frozen encoder's token is)."""
    fixed = torch.Generator().manual_seed(123)
    base = torch.randn(1, 1, 4, 24, generator=fixed)  # [1, T', h*w, D]: each place's content
    direction = torch.randn(24, generator=fixed)  # the channels the motion moves
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n_batches):
        amplitude = 1 + 4 * torch.rand(16, generator=g)
        phase = 2 * math.pi * torch.rand(16, generator=g)
        wave = torch.sin(phase[:, None] + 2 * math.pi * torch.arange(4) / 4)  # [B, T']
        swing = 0.3 * (amplitude[:, None] * wave)[:, :, None, None] * direction  # [B, T', 1, D]
        tokens = (base + swing + 0.05 * torch.randn(16, 4, 4, 24, generator=g)).reshape(16, 16, 24)
        batches.append({"tokens": tokens, "mask": None, "target": amplitude})
    return batches


def test_motion_tokens_let_a_shallow_probe_read_an_amplitude_at_a_random_phase_sooner():
    train, val = _amplitude_batches(8, seed=0), _amplitude_batches(4, seed=1)
    kw = dict(embed_dim=24, out_dim=1, depth=1, num_heads=4, token_grid=GRID, position="sincos")
    scores = {}
    for motion in (False, True):
        torch.manual_seed(0)
        bank = ProbeBank("attentive", {**kw, "motion": motion}, grid_specs([3e-3], [0.01]))
        res = train_probe_bank(bank, train, val, ProbeTask("regression"), epochs=15)
        scores[motion] = float(res.val_metrics[0])
    floor = float(torch.cat([b["target"] for b in val]).sub(3.0).abs().mean())  # ~ the train-mean MAE
    # the same head, budget and seed: a weighted mean of tokens reads the swing only through LayerNorm's
    # nonlinearity; the motion tokens hand it over
    assert scores[True] < 0.2 * floor
    assert scores[True] < 0.5 * scores[False]


def test_task_motion_reaches_that_tasks_attentive_heads_only_and_is_refused_for_other_kinds():
    probe = {"kind": "attentive", "head": {"depth": 2}, "task_motion": {"lvef": True}}
    assert bank_config(probe, {"name": "lvef"}, None, [])["head"]["motion"] is True
    assert "motion" not in bank_config(probe, {"name": "view"}, None, [])["head"]
    with pytest.raises(ValueError, match="task_motion.lvef"):
        bank_config({**probe, "kind": "linear"}, {"name": "lvef"}, None, [])
