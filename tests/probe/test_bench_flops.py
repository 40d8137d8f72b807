"""The FLOPs floor in `make bench` counts what the attentive heads actually run."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from echojepa.probe.bench import attentive_probe_train_flops
from echojepa.probe.heads import AttentiveProbe


def _measured(probe: AttentiveProbe, tokens: torch.Tensor, backward: bool) -> int:
    with FlopCounterMode(display=False) as counter:
        out = probe(tokens)
        if backward:
            out.sum().backward()
    return counter.get_total_flops()


def test_analytic_probe_flops_match_the_folded_head_within_five_percent():
    # depth 1 only: FlopCounterMode does not count CPU SDPA, which the self-attention blocks use
    torch.manual_seed(0)
    n, d, heads = 256, 64, 4
    probe = AttentiveProbe(embed_dim=d, out_dim=1, depth=1, num_heads=heads)
    tokens = torch.randn(1, n, d)  # frozen: no gradient
    measured = _measured(probe, tokens, backward=True)
    analytic = attentive_probe_train_flops(n, d, 1, 4 * d, heads)
    assert analytic == pytest.approx(measured, rel=0.05)


def test_folded_cross_attention_costs_far_less_than_an_unfolded_kv_projection():
    n, d, heads = 256, 64, 4
    probe = AttentiveProbe(embed_dim=d, out_dim=1, depth=1, num_heads=heads)
    fwd = _measured(probe, torch.randn(1, n, d), backward=False)
    unfolded_kv = 2 * n * d * 2 * d  # what a [N, D] x [D, 2D] key/value projection alone would cost
    assert fwd < unfolded_kv / 4


def test_heads_at_the_common_probe_width_cost_the_same_beside_any_backbone():
    from echojepa.probe.bench import heads_flops_ratio

    vitl = [heads_flops_ratio("vitl", 392, 2, depth=d, width=1024) for d in (1, 2, 4)]
    vitg = [heads_flops_ratio("vitg", 392, 2, depth=d, width=1024) for d in (1, 2, 4)]
    assert [r["head_gflop"] for r in vitl] == [r["head_gflop"] for r in vitg]  # the head ignores D
    assert 0 < vitl[0]["projection_gflop"] < vitg[0]["projection_gflop"]  # the map reads D channels
    # the temporal probe's self-attention block runs per head over every token: 12 heads cost more
    assert 1.0 < vitl[0]["flops_ratio"] < 1.5 < vitl[1]["flops_ratio"] < vitl[2]["flops_ratio"] < 12.0
