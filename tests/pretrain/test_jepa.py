import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from echojepa.pretrain.build import build_module
from echojepa.pretrain.data import build_datamodule

from .helpers import LossRecorder, fixed_batch_loss, tiny_cfg, trainer


def test_jepa_lowers_its_loss_on_echosynth_without_nan(synth_world, tmp_path):
    # Measured on a fixed batch with fixed masks, 40 steps, seeds 0/1/2: after/before = 0.93 / 0.96 / 0.96.
    L.seed_everything(0)
    cfg = tiny_cfg("jepa", synth_world)
    module, dm = build_module(cfg), build_datamodule(cfg)
    dm.setup("fit")
    video = next(iter(dm.train_dataloader()))["video"]
    before = fixed_batch_loss(module, video)
    rec = LossRecorder()
    trainer(40, tmp_path, [rec]).fit(module, datamodule=dm)
    assert len(rec.losses) == 40
    assert all(math.isfinite(x) for x in rec.losses)
    after = fixed_batch_loss(module, video)
    assert after < 0.98 * before, (before, after)


def test_ema_target_moves_and_stays_distinct_from_online(synth_world, tmp_path):
    cfg = tiny_cfg("jepa", synth_world, **{"objective.ema": {"start": 0.9, "end": 0.9, "ramp_steps": 0}})
    module, dm = build_module(cfg), build_datamodule(cfg)
    target0 = [p.detach().clone() for p in module.target_encoder.parameters()]
    online0 = [p.detach().clone() for p in module.encoder.parameters()]
    torch.testing.assert_close(target0, online0)  # the target starts as a copy
    trainer(6, tmp_path).fit(module, datamodule=dm)
    target1 = list(module.target_encoder.parameters())
    online1 = list(module.encoder.parameters())
    moved = sum((a - b).abs().sum().item() for a, b in zip(target1, target0))
    gap = sum((a - b).abs().sum().item() for a, b in zip(target1, online1))
    assert moved > 0 and gap > 0
    assert all(not p.requires_grad for p in target1)
    assert module.ema_updates == 6


def test_context_encoder_never_receives_target_tokens(synth_world):
    cfg = tiny_cfg("jepa", synth_world)
    module = build_module(cfg)
    calls = []
    original = module.encoder.forward

    def spy(x, keep=None):
        calls.append(keep)
        return original(x, keep=keep)

    module.encoder.forward = spy
    video = torch.randn(3, 3, 8, 32, 32)
    _, _, groups = module.jepa_loss(video)
    assert len(calls) == len(groups) == 2
    for keep, (ctx_idx, tgt_idx) in zip(calls, groups):
        assert keep is not None, "the context encoder saw the full clip"
        assert torch.equal(keep, ctx_idx)
        for b in range(video.shape[0]):
            assert not set(keep[b].tolist()) & set(tgt_idx[b].tolist())


@pytest.mark.parametrize(("official_quirks", "tokens"), [(False, [0, 1]), (True, [0, 0])])
def test_official_quirks_give_every_group_mask_token_zero(tmp_path, official_quirks, tokens):
    module = build_module(tiny_cfg("jepa", tmp_path, **{"objective.official_quirks": official_quirks}))
    used = []
    original = module.predictor.forward

    def spy(*args, mask_token_id=0, **kwargs):
        used.append(mask_token_id)
        return original(*args, mask_token_id=mask_token_id, **kwargs)

    module.predictor.forward = spy
    module.jepa_loss(torch.randn(2, 3, 8, 32, 32))
    assert used == tokens
    trainable = [i for i, t in enumerate(module.predictor.mask_tokens) if t.requires_grad]
    assert trainable == sorted(set(tokens))  # unused tokens are frozen (no parameter without a gradient)


def test_ema_updates_once_per_optimizer_step_under_accumulation(synth_world, tmp_path):
    cfg = tiny_cfg("jepa", synth_world)
    module, dm = build_module(cfg), build_datamodule(cfg)
    updates = []
    import echojepa.pretrain.jepa as jepa_mod

    real = jepa_mod.ema_update

    def counting(target, online, momentum):
        updates.append(module.global_step)
        real(target, online, momentum)

    jepa_mod.ema_update = counting
    try:
        trainer(3, tmp_path, accumulate_grad_batches=2).fit(module, datamodule=dm)
    finally:
        jepa_mod.ema_update = real
    assert updates == [0, 1, 2]  # once per optimizer step (6 batches, accumulation 2, 3 steps), after it


class MetricRecorder(L.Callback):
    """The value of each named logged metric after every training batch."""

    def __init__(self, *names: str) -> None:
        self.values: dict[str, list[float]] = {n: [] for n in names}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        for name, seen in self.values.items():
            seen.append(float(trainer.callback_metrics[name]))


def random_clips(n: int, batch: int = 2) -> DataLoader:
    """n ready-made batches of tiny random clips (the FLOPs depend on the masks only)."""
    g = torch.Generator().manual_seed(0)
    return DataLoader(
        [{"video": torch.randn(batch, 3, 8, 32, 32, generator=g)} for _ in range(n)], batch_size=None
    )


def expected_gflops(cfg: dict, steps: int, batch: int = 2) -> list[float]:
    """Each step's GFLOPs from the run's own mask draws, replayed by a fresh generator (same seed)."""
    module = build_module(cfg)
    return [module.flops_per_sample(module.mask_generator(batch)) * batch / 1e9 for _ in range(steps)]


def test_gflops_per_step_follow_each_steps_masks_and_add_up_to_the_total(tmp_path):
    cfg = tiny_cfg("jepa", tmp_path)
    module = build_module(cfg)
    rec = MetricRecorder("train/gflops_per_step", "train/gflops_total")
    trainer(6, tmp_path, [rec]).fit(module, random_clips(6))
    expected = expected_gflops(cfg, 6)
    assert len(set(expected)) > 1  # the mask draws differ in size, and so does the compute
    assert rec.values["train/gflops_per_step"] == pytest.approx(expected)
    running = [sum(expected[: i + 1]) for i in range(6)]
    assert rec.values["train/gflops_total"] == pytest.approx(running)
    assert module.gflops_total == pytest.approx(running[-1])


def test_gflops_total_continues_across_a_resume(tmp_path):
    cfg = tiny_cfg("jepa", tmp_path)
    run = trainer(3, tmp_path)
    run.fit(build_module(cfg), random_clips(6))
    run.save_checkpoint(tmp_path / "step3.ckpt", weights_only=False)
    resumed = build_module(cfg)
    trainer(6, tmp_path).fit(resumed, random_clips(6), ckpt_path=tmp_path / "step3.ckpt", weights_only=True)
    assert resumed.gflops_total == pytest.approx(sum(expected_gflops(cfg, 6)))


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_fit_start_gives_each_data_parallel_rank_its_own_mask_stream(objective, tmp_path, monkeypatch):
    module = build_module(tiny_cfg(objective, tmp_path))
    monkeypatch.setattr(type(module), "global_rank", property(lambda self: 3))
    module.on_fit_start()
    assert module.mask_generator.stream == 3
