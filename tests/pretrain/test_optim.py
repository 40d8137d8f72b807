import pytest
import torch
from torch import nn

from echojepa.pretrain.optim import param_groups
from echojepa.schedules import ScheduleConfig, build_scheduler, lr_at


def test_no_weight_decay_on_biases_norms_and_tokens():
    m = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    m.mask_token = nn.Parameter(torch.zeros(1, 1, 4, 4))  # 4-D but a token: no decay
    decay, no_decay = param_groups([m], weight_decay=0.04)
    assert decay["weight_decay"] == 0.04 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 4])]
    assert len(no_decay["params"]) == 4  # linear bias, norm weight + bias, mask token


def test_warmup_then_constant_never_decays():
    cfg = ScheduleConfig(kind="warmup_constant", lr=1e-3, start_lr=0.0, warmup_steps=10)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[9] == pytest.approx(1e-3)
    assert all(lr == pytest.approx(1e-3) for lr in lrs[10:])
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))


def test_cooldown_decays_linearly_to_final_lr():
    cfg = ScheduleConfig(kind="cooldown", lr=1e-3, final_lr=1e-6, total_steps=100)
    assert lr_at(0, cfg) == pytest.approx(1e-3)
    assert lr_at(50, cfg) == pytest.approx((1e-3 + 1e-6) / 2)
    assert lr_at(100, cfg) == pytest.approx(1e-6)
    assert lr_at(150, cfg) == pytest.approx(1e-6)


def test_scheduler_drives_optimizer_lr():
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=123.0)
    cfg = ScheduleConfig(kind="warmup_constant", lr=2e-3, warmup_steps=4)
    sched = build_scheduler(opt, cfg)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_at(s, cfg) for s in range(6)])


def test_unknown_schedule_kind_is_refused():
    with pytest.raises(ValueError, match="warmup_constant"):
        lr_at(0, ScheduleConfig(kind="linear_forever"))


def test_official_rule_decays_mask_tokens_but_not_biases_or_1d_parameters():
    m = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    m.mask_token = nn.Parameter(torch.zeros(1, 1, 4))
    decay, no_decay = param_groups([m], weight_decay=0.04, official_rule=True)
    assert {tuple(p.shape) for p in decay["params"]} == {(4, 4), (1, 1, 4)}
    assert len(no_decay["params"]) == 3  # linear bias, norm weight + bias
