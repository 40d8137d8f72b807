"""The attention kernel choice: float32 is SDPA itself; CPU bf16 (inputs or autocast) takes the explicit
path, which agrees with float32 to bf16 accuracy and honours SDPA's boolean mask convention."""

import torch
import torch.nn.functional as F

from echojepa.models.attention import attention, cpu_bf16


def qkv(seed: int = 0, n: int = 24) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 3, n, 16, generator=g) for _ in range(3))


def test_float32_is_sdpa_exactly():
    q, k, v = qkv()
    assert not cpu_bf16(q)
    assert torch.equal(attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_cpu_bf16_matches_float32_to_bf16_accuracy_in_both_ways_of_asking():
    q, k, v = qkv()
    ref = F.scaled_dot_product_attention(q, k, v)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cpu_bf16(q)
        under_autocast = attention(q, k, v)
    direct = attention(*(t.bfloat16() for t in (q, k, v)))
    for out in (under_autocast, direct):
        assert out.dtype == torch.bfloat16
        assert ((out.float() - ref).norm() / ref.norm()) < 2e-2  # bf16 keeps ~3 significant digits


def test_the_mask_keeps_a_query_off_the_masked_keys_in_bf16_as_in_sdpa():
    q, k, v = qkv(1)
    mask = torch.ones(2, 1, 1, 24, dtype=torch.bool)
    mask[0, ..., 10:] = False  # sample 0 attends its first 10 keys only
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = attention(*(t.bfloat16() for t in (q, k, v)), attn_mask=mask).float()
    assert ((out - ref).norm() / ref.norm()) < 2e-2
    changed = v.clone()
    changed[0, :, 10:] += 100.0  # values behind the mask cannot reach the output
    again = attention(*(t.bfloat16() for t in (q, k, changed)), attn_mask=mask).float()
    assert torch.equal(again[0], out[0])


def _grads(fn, q, k, v, w, **kwargs):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = fn(q, k, v, **kwargs)
    (out.float() * w).sum().backward()
    return [out.float(), q.grad.float(), k.grad.float(), v.grad.float()]


def test_the_chunked_form_for_large_scores_agrees_with_the_explicit_one_forward_and_backward(monkeypatch):
    from echojepa.models import attention as att

    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(3, 2, 24, 16, generator=g).bfloat16() for _ in range(3))
    w = torch.randn(3, 2, 24, 16, generator=g)
    mask = torch.ones(3, 1, 1, 24, dtype=torch.bool)
    mask[1, ..., 7:] = False
    ref = _grads(F.scaled_dot_product_attention, q.float(), k.float(), v.float(), w, attn_mask=mask)
    explicit = _grads(attention, q, k, v, w, attn_mask=mask)
    calls = []
    original = att._ChunkedAttention.apply
    monkeypatch.setattr(att._ChunkedAttention, "apply", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr(att, "CHUNK_FROM", 1)  # every size is "large"
    monkeypatch.setattr(att, "CHUNK_SCORES", 2 * 24 * 24)  # 2 of the 6 (sample, head) pairs per chunk
    chunked = _grads(attention, q, k, v, w, attn_mask=mask)
    assert calls  # the chunked form ran
    for c, e, r in zip(chunked, explicit, ref):
        assert ((c - r).norm() / r.norm()) < 2e-2  # bf16 accuracy against float32, as the explicit form
        assert ((c - e).norm() / e.norm()) < 2e-2
    changed = v.clone()
    changed[1, :, 7:] += 100.0  # values behind the mask reach neither the output nor its gradient
    again = _grads(attention, q, k, changed, w, attn_mask=mask)
    assert torch.equal(again[0][1], chunked[0][1]) and torch.equal(again[1][1], chunked[1][1])
