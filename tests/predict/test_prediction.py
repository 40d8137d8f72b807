"""echojepa.predict.prediction: per-file prediction with view gating, attention maps, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from echojepa.predict import InferenceSession, PredictOptions, make_bundle
from echojepa.probe.backbones import build_backbone, load_backbone_config
from echojepa.probe.heads import AttentiveProbe

from .helpers import PRE, SECRETS, VIEWS, write_probes


# ----- attention weights of the attentive probe ------------------------------------------------------------
def _random_affine(probe: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.normal_()
                m.bias.normal_()
            if isinstance(m, torch.nn.Linear):
                m.bias.normal_()


def test_attention_weights_sum_to_one_per_head_and_give_padding_zero():
    torch.manual_seed(0)
    probe = AttentiveProbe(16, 3, depth=2, num_heads=4, num_queries=2)
    _random_affine(probe)
    tokens = torch.randn(3, 7, 16)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[1, 5:] = True
    w = probe.attention_weights(tokens, mask)
    assert w.shape == (3, 4, 7)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 4))
    assert torch.all(w[1, :, 5:] == 0)
    garbage = tokens.clone()
    garbage[1, 5:] = float("nan")  # what padding holds cannot matter
    torch.testing.assert_close(probe.attention_weights(garbage, mask), w)


def test_attention_weights_are_the_ones_the_probe_pools_with():
    """Pooling the values with the returned weights reproduces the probe's own output exactly."""
    torch.manual_seed(1)
    probe = AttentiveProbe(16, 3, depth=2, num_heads=4).double()
    _random_affine(probe)
    x = torch.randn(5, 6, 16, dtype=torch.float64)
    a = probe.pooler.stacked_attention(
        {n[len("pooler.") :]: p[None] for n, p in probe.named_parameters() if n.startswith("pooler.")},
        x,
        None,
        True,
    )[0, :, 0]  # [B, heads, N]
    h = x
    for blk in probe.pooler.blocks:  # the self-attention blocks, textbook form
        b, n, d = h.shape
        qkv = blk.attn.qkv(blk.norm1(h)).view(b, n, 3, 4, d // 4).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(b, n, d)
        h = h + blk.attn.proj(o)
        h = h + blk.mlp.fc2(F.gelu(blk.mlp.fc1(blk.norm2(h))))
    cb = probe.pooler.cross_attention_block
    v = cb.xattn.kv(cb.norm1(h))[..., 16:].view(5, 6, 4, 4).transpose(1, 2)  # [B, heads, N, hd]
    q = probe.pooler.query_tokens[:, 0] + torch.einsum("bhn,bhnj->bhj", a, v).reshape(5, 16)
    q = q + cb.mlp.fc2(F.gelu(cb.mlp.fc1(cb.norm2(q))))
    torch.testing.assert_close(probe.linear(q), probe(x), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(probe.attention_weights(x), a)


# ----- prediction -----------------------------------------------------------------------------------------
def test_avi_and_dicom_get_view_probabilities_and_lvef(world, session):
    for name in ("clip.avi", "study.dcm"):
        r = session.predict_file(world["files"] / name)
        assert r["scorable"] and r["kind"] == "cine" and r["frames"] == 20
        probs = r["view"]["probabilities"]
        assert list(probs) == VIEWS and abs(sum(probs.values()) - 1.0) < 1e-5
        assert r["view"]["top"] == "A4C" == max(probs, key=probs.get)
        assert isinstance(r["lvef"], float) and np.isfinite(r["lvef"])
        assert r["clips"] == {"view": 1, "lvef": 2}
    assert session.predict_file(world["files"] / "study.dcm")["fps"] == pytest.approx(25.0)


def test_lvef_is_withheld_with_a_reason_when_the_top_view_is_not_a4c(world):
    r = InferenceSession.from_bundle(world["plax"]).predict_file(world["files"] / "clip.avi")
    assert r["view"]["top"] == "PLAX"
    assert r["lvef"] is None and "PLAX" in r["lvef_reason"] and "A4C" in r["lvef_reason"]


def test_unscorable_files_are_reported_with_reasons(world, session):
    f = world["files"]
    results = [session.predict_file(f / n) for n in ("still.dcm", "doppler.dcm", "corrupt.avi", "gone.avi")]
    assert [r["scorable"] for r in results] == [False] * 4
    assert results[0]["reason"] == "still image"
    assert results[1]["reason"] == "Doppler spectrum"
    assert "cannot open container" in results[2]["reason"]
    assert results[3]["reason"] == "file not found"
    assert all(set(r) == {"file", "scorable", "reason"} for r in results)


def test_backbone_runs_once_per_distinct_clip(world, session, monkeypatch):
    seen = []
    forward = session.backbone.forward
    monkeypatch.setattr(session.backbone, "forward", lambda x: seen.append(x.shape[0]) or forward(x))
    session.predict_file(world["files"] / "clip.avi")
    # 20 frames, span 7: the view's centre clip starts at 6, LVEF's two segment clips at 3 and 10
    assert sum(seen) == 3


def test_all_clips_mode_averages_every_window(world):
    base = InferenceSession.from_bundle(world["a4c"])
    every = InferenceSession.from_bundle(world["a4c"], options=PredictOptions(clip_mode="all"))
    r = every.predict_file(world["files"] / "clip.avi")
    assert r["clips"]["view"] == 3  # windows at 0, 7 and one flush with the end (13)
    one = base.predict_file(world["files"] / "clip.avi")
    assert r["lvef"] != pytest.approx(one["lvef"], abs=1e-9)


def test_attention_maps_are_written_as_png_strip_and_gif(world, tmp_path):
    options = PredictOptions(display_size=48, attention_frames=3)
    p = InferenceSession.from_bundle(world["a4c"], options=options)
    r = p.predict_file(world["files"] / "study.dcm", attention_dir=tmp_path / "maps")
    att = r["attention"]
    assert att["grid"] == [2, 2, 2] and att["tasks"] == ["view", "lvef"]
    assert Path(att["png"]) == tmp_path / "maps" / "study_attention.png"
    with Image.open(att["png"]) as png:
        png.verify()
    with Image.open(att["png"]) as png:
        assert png.size == (3 * 48, 3 * (48 + 14))  # 3 frames x (view clip, 2 LVEF clips)
    with Image.open(att["gif"]) as gif:
        assert gif.format == "GIF" and gif.n_frames == 4
    again = p.predict_file(world["files"] / "study.dcm", attention_dir=tmp_path / "maps")
    assert again["attention"]["png"] != att["png"]  # same stem: no silent overwrite


def test_attention_maps_only_for_the_view_when_lvef_is_withheld(world, tmp_path):
    r = InferenceSession.from_bundle(world["plax"]).predict_file(world["files"] / "clip.avi", tmp_path)
    assert r["attention"]["tasks"] == ["view"]


@pytest.mark.parametrize("layout, drawn", [("cells", [1, 2, 2]), ("vector", None)])
def test_attention_maps_are_drawn_on_the_backbones_token_grid_or_say_why_not(layout, drawn, world, tmp_path):
    pre = {**PRE, "mean": [0.0] * 3, "std": [1.0] * 3}
    cfg = {**load_backbone_config("pixel_stats"), "grid": 2, "layout": layout, "preprocess": pre}
    backbone = build_backbone(cfg)
    bundle = make_bundle(tmp_path / "stats.bundle", cfg, write_probes(tmp_path, backbone, "A4C"))
    result = InferenceSession.from_bundle(bundle).predict_file(world["files"] / "clip.avi", tmp_path)
    att = result["attention"]
    assert att.get("grid") == drawn
    assert (att["png"] is None) == (drawn is None)
    if drawn is None:
        assert att["reason"] == "backbone kind 'pixel_stats' gives 1 tokens per clip, not a token grid"


def test_no_patient_identifier_reaches_results_or_written_files(world, session, tmp_path):
    maps = tmp_path / "maps"
    results = [
        session.predict_file(world["files"] / n, attention_dir=maps)
        for n in ("study.dcm", "still.dcm", "doppler.dcm")
    ]
    text = json.dumps(results)
    blobs = [p.read_bytes() for p in maps.iterdir()]
    assert blobs
    for secret in SECRETS:
        assert secret not in text
    for secret in SECRETS[0], SECRETS[-1]:  # short strings turn up in compressed image bytes by chance
        assert all(secret.encode() not in b for b in blobs)
