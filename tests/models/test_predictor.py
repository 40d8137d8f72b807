import pytest
import torch

from echojepa.models.predictor import Predictor

GRID = (2, 3, 3)  # 18 tokens


def small_predictor(**kw) -> Predictor:
    args = dict(embed_dim=24, predictor_embed_dim=32, depth=2, num_heads=1, num_mask_tokens=3)
    args.update(kw)
    return Predictor(**args)


def indices():
    ctx_idx = torch.tensor([[0, 4, 9, 17], [2, 3, 10, 11]])
    tgt_idx = torch.tensor([[1, 5, 12], [0, 8, 16]])
    return ctx_idx, tgt_idx


def test_predicts_one_encoder_width_vector_per_target():
    torch.manual_seed(0)
    ctx_idx, tgt_idx = indices()
    out = small_predictor()(torch.randn(2, 4, 24), ctx_idx, tgt_idx, GRID)
    assert out.shape == (2, 3, 24)


def test_mask_tokens_use_released_names_and_start_at_zero():
    pred = small_predictor()
    names = set(pred.state_dict())
    assert {"mask_tokens.0", "mask_tokens.1", "mask_tokens.2"} <= names
    assert {"predictor_embed.weight", "predictor_norm.bias", "predictor_proj.weight"} <= names
    assert "predictor_blocks.1.mlp.fc2.weight" in names
    assert all(torch.all(t == 0) for t in pred.mask_tokens)
    assert pred.mask_tokens[0].shape == (1, 1, 32)


def test_output_follows_token_indices_not_input_order():
    torch.manual_seed(0)
    pred = small_predictor().eval()
    ctx = torch.randn(2, 4, 24)
    ctx_idx, tgt_idx = indices()
    ref = pred(ctx, ctx_idx, tgt_idx, GRID)
    perm_c, perm_t = torch.tensor([2, 0, 3, 1]), torch.tensor([2, 0, 1])
    out = pred(ctx[:, perm_c], ctx_idx[:, perm_c], tgt_idx[:, perm_t], GRID)
    assert torch.allclose(out, ref[:, perm_t], atol=1e-5)


def test_target_positions_change_the_prediction():
    torch.manual_seed(0)
    pred = small_predictor().eval()
    ctx = torch.randn(2, 4, 24)
    ctx_idx, tgt_idx = indices()
    moved = tgt_idx.clone()
    moved[:, 0] = torch.tensor([6, 6])
    assert not torch.allclose(pred(ctx, ctx_idx, tgt_idx, GRID)[:, 0], pred(ctx, ctx_idx, moved, GRID)[:, 0])


def test_mask_token_id_selects_the_token():
    torch.manual_seed(0)
    pred = small_predictor().eval()
    with torch.no_grad():
        pred.mask_tokens[1].normal_()
    ctx = torch.randn(2, 4, 24)
    ctx_idx, tgt_idx = indices()
    a = pred(ctx, ctx_idx, tgt_idx, GRID, mask_token_id=0)
    assert not torch.allclose(a, pred(ctx, ctx_idx, tgt_idx, GRID, mask_token_id=1))
    assert torch.allclose(a, pred(ctx, ctx_idx, tgt_idx, GRID, mask_token_id=2))  # both still zero
    with pytest.raises(ValueError, match="mask_token_id"):
        pred(ctx, ctx_idx, tgt_idx, GRID, mask_token_id=3)


def test_mismatched_index_shapes_are_refused():
    ctx_idx, tgt_idx = indices()
    with pytest.raises(ValueError, match="do not match"):
        small_predictor()(torch.randn(2, 5, 24), ctx_idx, tgt_idx, GRID)


def test_activation_checkpointing_gives_same_outputs_and_grads():
    torch.manual_seed(0)
    plain, ckpt = small_predictor(), small_predictor(use_activation_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    ctx_idx, tgt_idx = indices()
    ctx = torch.randn(2, 4, 24)
    results = []
    for model in (plain, ckpt):
        c = ctx.clone().requires_grad_(True)
        y = model(c, ctx_idx, tgt_idx, GRID)
        (y**2).sum().backward()
        grads = [p.grad for p in model.parameters()]  # None for the unused mask tokens
        results.append((y.detach(), c.grad, grads))
    (y0, c0, g0), (y1, c1, g1) = results
    assert torch.allclose(y0, y1, atol=1e-6) and torch.allclose(c0, c1, atol=1e-6)
    for a, b in zip(g0, g1):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-6)
