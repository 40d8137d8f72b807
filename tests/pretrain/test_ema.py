import torch
from torch import nn

from echojepa.pretrain.ema import ema_update, make_target, momentum_at


def test_ema_update_is_lerp_towards_online():
    online = nn.Linear(3, 2)
    target = make_target(online)
    assert all(not p.requires_grad for p in target.parameters())
    before = [p.clone() for p in target.parameters()]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    ema_update(target, online, momentum=0.9)
    for b, t, o in zip(before, target.parameters(), online.parameters()):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)


def test_momentum_ramp_and_constant():
    assert momentum_at(0, 100, 0.99, 1.0) == 0.99
    assert abs(momentum_at(50, 100, 0.99, 1.0) - 0.995) < 1e-12
    assert momentum_at(500, 100, 0.99, 1.0) == 1.0
    assert momentum_at(7, 0, 0.99925, 0.99925) == 0.99925
