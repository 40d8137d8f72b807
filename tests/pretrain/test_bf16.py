"""bf16-mixed on CPU (Lightning's MixedPrecision autocasts the step to bf16 there): pretraining still
learns, one step agrees with fp32, and the models keep float32 at their boundaries under autocast."""

import math

import lightning as L
import pytest
import torch

from echojepa.models.vit import VisionTransformer
from echojepa.pretrain.build import build_module
from echojepa.pretrain.data import build_datamodule

from .helpers import LossRecorder, fixed_batch_loss, tiny_cfg, trainer


class GradRecorder(L.Callback):
    """The flattened gradient of every trainable parameter, taken just before the optimizer step."""

    def __init__(self) -> None:
        self.grads: list[torch.Tensor] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        params = [p for m in pl_module.trainable_modules() for p in m.parameters() if p.grad is not None]
        self.grads.append(torch.cat([p.grad.detach().float().flatten() for p in params]))


# Width 32 and one predictor block: a CPU without native bf16 kernels (no AVX512-BF16 / AMX) runs bf16
# matmuls through a slow fallback, which at this width no longer outweighs the rest of the step.
NARROW = {
    "model.encoder.embed_dim": 32,
    "model.encoder.depth": 2,
    "model.encoder.num_heads": 1,
    "model.predictor.predictor_embed_dim": 32,
    "model.predictor.depth": 1,
    "model.predictor.num_heads": 1,
}


def test_bf16_mixed_pretraining_on_cpu_lowers_the_loss(synth_world, tmp_path):
    # Like the fp32 test in test_jepa.py: finite losses and a 2 % drop on a fixed batch with fixed masks
    # after 40 steps. Measured after/before, seeds 0/1/2: bf16-mixed 0.83 / 0.93 / 0.83, 32-true 0.87 /
    # 0.93 / 0.83.
    L.seed_everything(0)
    cfg = tiny_cfg("jepa", synth_world, **NARROW)
    module, dm = build_module(cfg), build_datamodule(cfg)
    dm.setup("fit")
    video = next(iter(dm.train_dataloader()))["video"]
    before = fixed_batch_loss(module, video)
    rec = LossRecorder()
    trainer(40, tmp_path, [rec], precision="bf16-mixed").fit(module, datamodule=dm)
    assert len(rec.losses) == 40 and all(math.isfinite(x) for x in rec.losses)
    after = fixed_batch_loss(module, video)
    assert after < 0.98 * before, (before, after)


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_one_bf16_mixed_step_matches_fp32(synth_world, tmp_path, objective):
    """The same first step (same weights, batch and masks) under 32-true and bf16-mixed.

    Tolerances, from measurements (seeds 0/1/2 of this config, and cpu_tiny at 64 px / batch 8):
    - loss: taken in float32 on the models' float32 outputs, so only the bf16 matmuls inside differ.
      Relative difference measured 1.7e-5 to 1.5e-4 (JEPA) and 3e-6 to 3e-5 (MAE) here, 6e-6 on
      cpu_tiny. A loss rounded to bf16 (8-bit mantissa: up to 2e-3) is off by 8.7e-4 to 3.6e-3
      (measured with the models' old bf16 outputs), so 5e-4 keeps 3x room and still catches it.
    - gradient: cosine similarity to the fp32 gradient, measured >= 0.99985 here (0.9992 JEPA,
      0.99999 MAE on cpu_tiny). bf16 rounds activations to 2^-9 relative, which moves each entry by a
      fraction of a percent; 0.999 allows 6x the measured 1 - cos and fails a wrong cast or a gradient
      path cut by a dtype change.
    """
    losses, grads = {}, {}
    for precision in ("32-true", "bf16-mixed"):
        L.seed_everything(0)
        cfg = tiny_cfg(objective, synth_world)
        module, dm = build_module(cfg), build_datamodule(cfg)
        rec, grad = LossRecorder(), GradRecorder()
        trainer(1, tmp_path, [rec, grad], precision=precision).fit(module, datamodule=dm)
        losses[precision], grads[precision] = rec.losses[0], grad.grads[0]
    rel = abs(losses["bf16-mixed"] - losses["32-true"]) / abs(losses["32-true"])
    cos = torch.nn.functional.cosine_similarity(grads["bf16-mixed"], grads["32-true"], dim=0).item()
    assert rel < 5e-4, (losses, rel)
    assert cos > 0.999, cos


def test_encoder_under_cpu_bf16_autocast_keeps_float32_output_close_to_fp32():
    """What feature extraction and probes see under bf16 autocast: float32 tokens, close to fp32 ones
    (relative error measured 2.6e-3 to 2.8e-3; bf16 matmuls with float32 residuals and norms)."""
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=32, num_frames=4, patch_size=8, embed_dim=48, depth=2, num_heads=1)
    vit.eval()
    x = torch.randn(2, 3, 4, 32, 32)
    keep = torch.tensor([[0, 3, 5, 9, 30], [1, 2, 4, 8, 31]])
    with torch.no_grad():
        ref_full, ref_kept = vit(x), vit(x, keep=keep)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            full, kept = vit(x), vit(x, keep=keep)
    assert full.dtype == kept.dtype == torch.float32
    for out, ref in ((full, ref_full), (kept, ref_kept)):
        err = ((out - ref).norm() / ref.norm()).item()
        assert err < 2e-2, err


@pytest.mark.parametrize("native", [False, True])
def test_auto_precision_is_resolved_for_this_cpu_before_lightning_sees_it(tmp_path, monkeypatch, native):
    import echojepa.precision as precision
    from echojepa.pretrain.build import build_trainer

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    cfg = {
        "trainer": {"accelerator": "cpu", "devices": 1, "precision": "auto", "max_steps": 1,
                    "enable_progress_bar": False},
        "checkpoint": {},
    }  # fmt: skip
    trainer = build_trainer(cfg, tmp_path, logger=False)
    assert str(trainer.precision) == ("bf16-mixed" if native else "32-true")
