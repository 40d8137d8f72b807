import math

import lightning as L
import torch

from echojepa.models.mae import normalise_patches, patchify
from echojepa.pretrain.build import build_module
from echojepa.pretrain.data import build_datamodule

from .helpers import LossRecorder, fixed_batch_loss, tiny_cfg, trainer


def test_mae_lowers_its_loss_on_echosynth_without_nan(synth_world, tmp_path):
    # Measured on a fixed batch with fixed masks, 40 steps, seeds 0/1/2: after/before = 0.957 / 0.951 / 0.950.
    L.seed_everything(0)
    cfg = tiny_cfg("mae", synth_world)
    module, dm = build_module(cfg), build_datamodule(cfg)
    dm.setup("fit")
    video = next(iter(dm.train_dataloader()))["video"]
    before = fixed_batch_loss(module, video)
    rec = LossRecorder()
    trainer(40, tmp_path, [rec]).fit(module, datamodule=dm)
    assert len(rec.losses) == 40 and all(math.isfinite(x) for x in rec.losses)
    after = fixed_batch_loss(module, video)
    assert after < 0.98 * before, (before, after)


def test_patchify_orders_tokens_like_the_encoder():
    # token index = t*H*W + h*W + w: mark one tubelet and find it at that index
    video = torch.zeros(1, 3, 4, 16, 16)
    video[:, :, 2:4, 8:16, 0:8] = 1.0  # t=1, h=1, w=0 on a 2x2x2 grid of 2x8x8 tubelets
    patches = patchify(video, patch_size=8, tubelet_size=2)  # [1, 8, 384]
    assert patches.shape == (1, 8, 2 * 8 * 8 * 3)
    lit = patches.sum(-1).squeeze(0).nonzero().flatten().tolist()
    assert lit == [1 * 4 + 1 * 2 + 0]


def test_normalised_patches_have_zero_mean_unit_variance():
    x = torch.randn(2, 5, 48) * 3 + 7
    y = normalise_patches(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(2, 5), atol=1e-3, rtol=0)


def test_mae_encoder_sees_only_visible_tokens(synth_world):
    cfg = tiny_cfg("mae", synth_world)
    module = build_module(cfg)
    seen = []
    original = module.encoder.forward
    module.encoder.forward = lambda x, keep=None: seen.append(keep) or original(x, keep=keep)
    module.mae_loss(torch.randn(2, 3, 8, 32, 32))
    t, h, w = module.grid_size
    assert len(seen) == 1
    keep = seen[0]  # [B, Nk]: the same spatial positions at every time step (tube masking)
    assert keep.shape[1] == t * (h * w - round(0.9 * h * w))
    spatial = keep % (h * w)
    assert all(torch.equal(row.view(t, -1)[0], row.view(t, -1)[k]) for row in spatial for k in range(t))
