"""Multi-view probe (early fusion with stream embeddings), view dropout, and the late-fusion ablation."""

from __future__ import annotations

import pytest
import torch

from echojepa.probe.bank import HeadSpec, ProbeBank
from echojepa.probe.fit import predict_bank, train_probe_bank
from echojepa.probe.heads import AttentiveProbe
from echojepa.probe.multiview import LateFusionProbe, MultiViewProbe, view_dropout
from echojepa.probe.task import ProbeTask

D, V, C, N = 16, 2, 2, 5
KW = {"embed_dim": D, "out_dim": 1, "num_views": V, "clips_per_view": C, "depth": 2, "num_heads": 4}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: thread hand-offs on a shared 2-core machine cost more than the math."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _study_batch(seed: int = 0, b: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, V * C, N, D, generator=g)  # [B, V*C, N, D]
    presence = torch.ones(b, V * C, dtype=torch.bool)
    presence[0, 2:] = False  # study 0 lacks view 1
    presence[2, :2] = False  # study 2 lacks view 0
    return tokens, presence


def test_missing_view_does_not_change_the_output():
    torch.manual_seed(0)
    probe = MultiViewProbe(**KW).eval()
    tokens, presence = _study_batch()
    garbage = tokens.clone()
    garbage[~presence] = float("nan")
    garbage[0, 2:] = 1e3
    torch.testing.assert_close(probe(garbage, presence=presence), probe(tokens, presence=presence))
    # and the same study with only its present view, laid out alone, gives the same prediction too
    alone = probe(tokens[:1], presence=presence[:1])
    torch.testing.assert_close(alone, probe(tokens, presence=presence)[:1])


def test_stream_embeddings_tell_views_and_clips_apart():
    torch.manual_seed(0)
    probe = MultiViewProbe(**KW).eval()
    tokens, _ = _study_batch()
    swapped = tokens[:, [2, 3, 0, 1]]  # the same clips, presented as the other view
    assert not torch.allclose(probe(tokens), probe(swapped), atol=1e-5)


def test_view_dropout_drops_whole_views_and_keeps_at_least_one():
    g = torch.Generator().manual_seed(0)
    presence = torch.ones(500, V * C, dtype=torch.bool)
    presence[::3, 2:] = False  # some studies have one view only
    out = view_dropout(presence, V, C, p=0.9, generator=g)
    views = out.view(500, V, C)
    assert (views.all(-1) | ~views.any(-1)).all()  # a view is kept or dropped as a whole
    assert out.any(dim=1).all()  # never every view
    assert not (out & ~presence).any()  # never invents a view
    assert (out != presence).any()  # and it does drop some
    # p = 0.1 on full studies drops about 10% of the views (at least one kept)
    light = view_dropout(torch.ones(4000, V * C, dtype=torch.bool), V, C, p=0.1, generator=g)
    dropped = 1 - light.view(4000, V, C)[..., 0].float().mean()
    assert 0.07 < float(dropped) < 0.12


def test_view_dropout_is_on_in_training_and_off_in_eval():
    torch.manual_seed(0)
    probe = MultiViewProbe(**{**KW, "view_dropout": 0.9})
    reference = MultiViewProbe(**{**KW, "view_dropout": 0.0})
    reference.load_state_dict(probe.state_dict())
    tokens, presence = _study_batch(b=8)
    probe.eval()
    reference.eval()
    torch.testing.assert_close(probe(tokens, presence=presence), reference(tokens, presence=presence))
    probe.train()
    g = torch.Generator().manual_seed(1)
    assert not torch.allclose(
        probe(tokens, presence=presence, generator=g), reference(tokens, presence=presence), atol=1e-5
    )


def test_late_fusion_is_a_presence_weighted_average_of_one_shared_probe():
    torch.manual_seed(0)
    late = LateFusionProbe(**KW).eval()
    tokens, presence = _study_batch()
    slot_probe = AttentiveProbe(D, 1, depth=2, num_heads=4)
    slot_probe.load_state_dict(late.probe.state_dict())
    per_slot = torch.stack([slot_probe(tokens[:, s]) for s in range(V * C)], dim=1)  # [B, S, 1]
    w = presence.float()
    expected = (per_slot * w[..., None]).sum(1) / w.sum(1, keepdim=True)
    torch.testing.assert_close(late(tokens, presence=presence), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["multiview", "late_fusion"])
def test_all_views_missing_is_refused(kind):
    probe = (MultiViewProbe if kind == "multiview" else LateFusionProbe)(**KW)
    tokens, presence = _study_batch()
    presence[1] = False
    with pytest.raises(ValueError, match="no present view"):
        probe(tokens, presence=presence)


@pytest.mark.parametrize("kind", ["multiview", "late_fusion"])
def test_multiview_bank_runs_k_heads_in_one_pass_and_trains(kind):
    specs = [HeadSpec(1e-3, 0.1, seed=0), HeadSpec(3e-4, 0.01, seed=1)]
    bank = ProbeBank(kind, {**KW, "view_dropout": 0.0}, specs).eval()
    tokens, presence = _study_batch()
    out = bank(tokens, presence=presence)  # [K, B, 1]
    for k in range(2):
        torch.testing.assert_close(out[k], bank.heads[k](tokens, presence=presence), atol=1e-6, rtol=1e-6)
    batches = []
    for seed in range(4):
        t, p = _study_batch(seed, b=4)
        batches.append({"tokens": t, "presence": p, "target": 40.0 + 5.0 * t[:, 0, :, 0].mean(1)})
    res = train_probe_bank(bank, batches[:3], batches[3:], ProbeTask("regression"), epochs=2, seed=0)
    assert len(res.val_metrics) == 2
    assert predict_bank(bank, batches[3:], head=res.best_head).shape == (4,)
