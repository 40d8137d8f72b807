import math

import torch

from echojepa.models.mae import normalise_patches, patchify
from echojepa.pretrain.build import build_module
from echojepa.pretrain.data import build_datamodule

from .helpers import LossRecorder, tiny_cfg, trainer


def test_mae_lowers_its_loss_on_echosynth_without_nan(synth_world, tmp_path):
    cfg = tiny_cfg("mae", synth_world)
    module, dm = build_module(cfg), build_datamodule(cfg)
    rec = LossRecorder()
    trainer(40, tmp_path, [rec]).fit(module, datamodule=dm)
    assert all(math.isfinite(x) for x in rec.losses)
    first, last = sum(rec.losses[:5]) / 5, sum(rec.losses[-5:]) / 5
    assert last < 0.95 * first, (first, last)


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
    n = module.num_tokens
    assert len(seen) == 1
    assert 0 < seen[0].shape[1] <= math.ceil(n * 0.1)
