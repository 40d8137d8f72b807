"""Probe heads trained under bf16 autocast: parameters stay float32, the result records the precision,
the heads learn what float32 heads learn to within bf16 accuracy, and a bad value is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echojepa.precision import resolve_precision
from echojepa.probe.bank import HeadSpec, ProbeBank
from echojepa.probe.fit import train_probe_bank
from echojepa.probe.task import ProbeTask

D = 16
ATT = {"embed_dim": D, "out_dim": 1, "depth": 2, "num_heads": 4}


def batches(n_batches: int, seed: int, b: int = 16, n: int = 8) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        tokens = torch.randn(b, n, D, generator=g)
        out.append({"tokens": tokens, "mask": None, "target": 50.0 + 10.0 * tokens[:, :, 0].mean(1)})
    return out


def trained(precision: str):
    torch.manual_seed(0)
    bank = ProbeBank("attentive", ATT, [HeadSpec(3e-3, 0.01, seed=0)])
    task = ProbeTask("regression", target_mean=50.0, target_std=10.0)
    res = train_probe_bank(bank, batches(12, 0), batches(4, 1), task, epochs=4, precision=precision)
    return bank, res


def test_bf16_heads_keep_float32_parameters_and_learn_what_float32_heads_learn():
    bank32, res32 = trained("32-true")
    bank16, res16 = trained("bf16-mixed")
    assert res32.probe["precision"] == "32-true" and res16.probe["precision"] == "bf16-mixed"
    assert all(p.dtype == torch.float32 for p in bank16.parameters())
    trivial = float(np.mean(np.abs([b["target"].numpy() - 50.0 for b in batches(4, 1)])))
    mae32, mae16 = res32.val_metrics[0], res16.val_metrics[0]
    assert mae32 < 0.7 * trivial and mae16 < 0.7 * trivial  # both learned the target
    assert mae16 == pytest.approx(mae32, rel=0.1)  # 48 steps of bf16 rounding stay within 10 %
    # the weights drift apart only by rounding: the trained heads point the same way (all parameters)
    flat32 = torch.cat([p.detach().flatten() for p in bank32.parameters()])
    flat16 = torch.cat([p.detach().flatten() for p in bank16.parameters()])
    assert torch.nn.functional.cosine_similarity(flat32, flat16, dim=0) > 0.99


def test_auto_resolves_to_bf16_only_where_it_pays(monkeypatch):
    import echojepa.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("auto", "cuda") == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16-mixed"
    assert resolve_precision("32-true", "cpu") == "32-true"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("16-mixed", "cpu")
