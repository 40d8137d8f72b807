import pytest
import torch

from echojepa.models.vit import VisionTransformer


def small_vit(**kw) -> VisionTransformer:
    args = dict(img_size=32, num_frames=4, patch_size=8, embed_dim=48, depth=2, num_heads=1)
    args.update(kw)
    return VisionTransformer(**args)


def test_full_clip_gives_one_token_per_tubelet_patch():
    torch.manual_seed(0)
    vit = small_vit()
    assert vit.grid_size == (2, 4, 4) and vit.num_patches == 32
    assert vit(torch.randn(2, 3, 4, 32, 32)).shape == (2, 32, 48)


def test_token_grid_follows_the_input_size():
    vit = small_vit()
    assert vit(torch.randn(1, 3, 8, 16, 24)).shape == (1, 4 * 2 * 3, 48)


def test_input_that_does_not_tile_is_refused():
    with pytest.raises(ValueError, match="does not tile"):
        small_vit()(torch.randn(1, 3, 4, 30, 32))
    with pytest.raises(ValueError, match="keep must be"):
        small_vit()(torch.randn(2, 3, 4, 32, 32), keep=torch.arange(5))


def test_keep_all_tokens_equals_full_forward():
    torch.manual_seed(0)
    vit = small_vit().eval()
    x = torch.randn(2, 3, 4, 32, 32)
    keep = torch.arange(32).expand(2, -1)
    assert torch.allclose(vit(x, keep=keep), vit(x), atol=1e-6)


def test_kept_tokens_keep_their_true_grid_positions():
    torch.manual_seed(0)
    vit = small_vit().eval()
    with torch.no_grad():  # sharpen and amplify attention so that positions visibly change the output
        for blk in vit.blocks:
            blk.attn.qkv.weight.mul_(30)
            blk.attn.proj.weight.mul_(30)
    # patches A, B alternate along w (same at every t, h): kept pairs (A, B) differ only in where they sit
    pair = torch.randn(1, 3, 2, 8, 16)
    x = pair.repeat(1, 1, 2, 4, 2)
    with torch.no_grad():
        near = vit(x, keep=torch.tensor([[0, 1]]))  # (0,0,0), (0,0,1)
        near_shifted = vit(x, keep=torch.tensor([[22, 23]]))  # (1,1,2), (1,1,3): same offset, elsewhere
        far = vit(x, keep=torch.tensor([[0, 3]]))  # (0,0,0), (0,0,3)
    assert torch.allclose(near, near_shifted, atol=1e-5)
    assert (near - far).abs().max() > 0.01  # vs ~1e-6 for the shifted pair


def test_out_layers_returns_normed_block_outputs():
    torch.manual_seed(0)
    vit = small_vit(depth=3, out_layers=[0, 2]).eval()
    full = small_vit(depth=3).eval()
    full.load_state_dict(vit.state_dict())
    x = torch.randn(1, 3, 4, 32, 32)
    outs = vit(x)
    assert isinstance(outs, list) and len(outs) == 2
    assert torch.allclose(outs[1], full(x), atol=1e-6)
    # normed by the shared final LayerNorm (unit weight, zero bias at init)
    assert torch.allclose(outs[0].mean(-1), torch.zeros(1, 32), atol=1e-4)
    assert torch.allclose(outs[0].std(-1, unbiased=False), torch.ones(1, 32), atol=1e-3)
    with pytest.raises(ValueError, match="out_layers"):
        small_vit(depth=2, out_layers=[2])


def test_parameter_names_match_released_layout():
    names = set(small_vit(depth=2).state_dict())
    expected = {"patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"}
    for n in range(2):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            expected |= {f"blocks.{n}.{part}.weight", f"blocks.{n}.{part}.bias"}
    assert names == expected


def test_init_scales_residual_projections_by_depth():
    torch.manual_seed(0)
    vit = small_vit(embed_dim=256, num_heads=4, depth=4)
    std = lambda p: p.detach().std().item()  # noqa: E731
    # block l (1-based) is divided by sqrt(2l): block 4 vs block 1 is a factor 2
    assert std(vit.blocks[0].attn.proj.weight) == pytest.approx(0.02 / 2**0.5, rel=0.05)
    assert std(vit.blocks[0].mlp.fc2.weight) / std(vit.blocks[3].mlp.fc2.weight) == pytest.approx(2, rel=0.05)
    assert std(vit.blocks[3].attn.qkv.weight) == pytest.approx(0.02, rel=0.05)
    assert torch.all(vit.blocks[1].attn.qkv.bias == 0) and torch.all(vit.norm.weight == 1)


def test_activation_checkpointing_gives_same_outputs_and_grads():
    torch.manual_seed(0)
    plain, ckpt = small_vit(), small_vit(use_activation_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    keep = torch.tensor([[0, 3, 9, 20], [1, 2, 30, 31]])
    outs, grads = [], []
    for model in (plain, ckpt):
        y = model(x, keep=keep)
        (y**2).sum().backward()
        outs.append(y.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    for g0, g1 in zip(*grads):
        assert torch.allclose(g0, g1, atol=1e-6)
