"""echojepa.predict: model bundles, per-file prediction with view gating, attention maps, refusals.

A tiny random-init ViT backbone (32 px, 4 frames) and attentive probe banks trained for a couple of
steps on random tokens; the view probe's bias is then pushed towards one class so the LVEF gate can be
exercised both ways.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from echojepa.io import write_dicom, write_video
from echojepa.models.checkpoint import export_reference_checkpoint
from echojepa.predict import BundleError, PredictOptions, Predictor, make_bundle, token_grid
from echojepa.probe.backbones import build_backbone, load_backbone_config
from echojepa.probe.heads import (
    AttentiveProbe,
    HeadSpec,
    ProbeBank,
    ProbeTask,
    save_probe,
    train_probe_bank,
)

VIEWS = ["A4C", "A2C", "A3C", "A5C", "PLAX", "PSAX", "Subcostal"]
IDENTIFIERS = {"PatientName": "Doe^Jane", "PatientID": "MRN123456"}
SECRETS = ("Doe^Jane", "Doe", "Jane", "MRN123456")
PRE = {"img_size": 32, "num_frames": 4, "frame_step": 2, "target_fps": None, "segments": 1,
       "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}  # fmt: skip
HEAD = {"depth": 2, "num_heads": 2}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def backbone_cfg() -> dict:
    return load_backbone_config("random_vit", preprocess=dict(PRE))


def trained_bank(embed_dim: int, task: ProbeTask, seed: int = 0) -> tuple[ProbeBank, ProbeTask]:
    bank = ProbeBank(
        "attentive", {"embed_dim": embed_dim, "out_dim": task.out_dim, **HEAD}, [HeadSpec(1e-3, 0.01)]
    )
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(2):
        tokens = torch.randn(4, 8, embed_dim, generator=g)
        target = (
            torch.randint(0, task.out_dim, (4,), generator=g)
            if task.kind == "classification"
            else 55.0 + 10.0 * torch.randn(4, generator=g)
        )
        batches.append({"tokens": tokens, "mask": None, "target": target})
    result = train_probe_bank(bank, batches, batches[:1], task, epochs=1)
    return bank, result.task


def write_probes(out: Path, backbone, favour: str, identity: str | None = None) -> dict[str, Path]:
    """A view probe whose bias makes `favour` the top class whatever the clip, and an LVEF probe."""
    identity = identity or backbone.identity()
    view, vtask = trained_bank(
        backbone.embed_dim, ProbeTask("classification", num_classes=7, class_names=VIEWS)
    )
    with torch.no_grad():
        view.heads[0].linear.bias[VIEWS.index(favour)] += 50.0
    lvef, ltask = trained_bank(backbone.embed_dim, ProbeTask("regression"), seed=1)
    paths = {"view": out / f"view_{favour}.pt", "lvef": out / "lvef.pt"}
    for (name, path), (bank, task) in zip(paths.items(), [(view, vtask), (lvef, ltask)]):
        meta = {"backbone": backbone.name, "backbone_identity": identity, "chosen_head": 0, "task": name}
        save_probe(path, bank, task, meta)
    return paths


def cine(frames: int = 20, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A bright disc that grows and shrinks over speckle: uint8 [T, H, W, 3]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    out = np.empty((frames, height, width), dtype=np.uint8)
    for t in range(frames):
        r = 8 + 6 * np.sin(2 * np.pi * t / 10)
        disc = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < r**2
        out[t] = np.clip(rng.rayleigh(40.0, (height, width)) + 150 * disc, 0, 255).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("predict")
    torch.set_num_threads(1)
    cfg = backbone_cfg()
    backbone = build_backbone(cfg)
    a4c = make_bundle(root / "a4c.bundle", cfg, write_probes(root, backbone, "A4C"))
    plax = make_bundle(root / "plax.bundle", cfg, write_probes(root, backbone, "PLAX"))
    files = root / "files"
    files.mkdir()
    frames = cine()
    write_video(files / "clip.avi", frames, 30.0)
    write_dicom(files / "study.dcm", frames, 25.0, identifiers=IDENTIFIERS)
    write_dicom(files / "still.dcm", frames[:1], None, kind="still", identifiers=IDENTIFIERS)
    write_dicom(files / "doppler.dcm", frames[:6], 30.0, kind="doppler", identifiers=IDENTIFIERS)
    (files / "corrupt.avi").write_bytes(b"not a video at all " * 64)
    return {"root": root, "cfg": cfg, "backbone": backbone, "a4c": a4c, "plax": plax, "files": files}


@pytest.fixture(scope="module")
def predictor(world) -> Predictor:
    return Predictor.from_bundle(world["a4c"])


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


# ----- bundle ---------------------------------------------------------------------------------------------
def test_bundle_is_weights_only_and_rebuilds_the_same_backbone(world, predictor):
    ckpt = torch.load(world["a4c"], weights_only=True)
    assert set(ckpt["tasks"]) == {"view", "lvef"}
    assert ckpt["tasks"]["lvef"]["clip"]["segments"] == 2  # conf/task/lvef.yaml's protocol
    assert predictor.backbone.identity() == world["backbone"].identity()
    clip = torch.rand(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(predictor.backbone(clip), world["backbone"](clip))


def test_checkpoint_backbone_bundle_needs_no_checkpoint_file_afterwards(tmp_path):
    torch.manual_seed(0)
    encoder = build_backbone(backbone_cfg()).encoder
    ckpt = tmp_path / "reference.pt"
    export_reference_checkpoint(ckpt, encoder, None, encoder, epoch=1)
    cfg = load_backbone_config("echojepa_demo", checkpoint=str(ckpt), model="cpu_tiny", preprocess=dict(PRE))
    backbone = build_backbone(cfg)
    bundle = make_bundle(tmp_path / "b.bundle", cfg, write_probes(tmp_path, backbone, "A4C"))
    ckpt.unlink()
    assert Predictor.from_bundle(bundle).backbone.identity() == backbone.identity()


def test_bundle_refuses_probes_trained_on_another_backbone(world, tmp_path):
    probes = write_probes(tmp_path, world["backbone"], "A4C", identity="0" * 64)
    with pytest.raises(BundleError, match="not on the bundled one"):
        make_bundle(tmp_path / "x.bundle", world["cfg"], probes)


def test_loading_refuses_a_bundle_whose_probe_identity_was_changed(world, tmp_path):
    ckpt = torch.load(world["a4c"], weights_only=True)
    ckpt["tasks"]["lvef"]["probe"]["meta"]["backbone_identity"] = "f" * 64
    torch.save(ckpt, tmp_path / "tampered.bundle")
    with pytest.raises(BundleError, match="refusing"):
        Predictor.from_bundle(tmp_path / "tampered.bundle")


def test_loading_refuses_missing_bundles_probes_and_weights(world, tmp_path):
    with pytest.raises(FileNotFoundError):
        Predictor.from_bundle(tmp_path / "absent.bundle")
    ckpt = torch.load(world["a4c"], weights_only=True)
    no_lvef = {**ckpt, "tasks": {"view": ckpt["tasks"]["view"]}}
    torch.save(no_lvef, tmp_path / "no_lvef.bundle")
    with pytest.raises(BundleError, match="lvef"):
        Predictor.from_bundle(tmp_path / "no_lvef.bundle")
    no_weights = {**ckpt, "backbone": {**ckpt["backbone"], "state_dict": {}}}
    torch.save(no_weights, tmp_path / "no_weights.bundle")
    with pytest.raises(BundleError, match="no backbone weights"):
        Predictor.from_bundle(tmp_path / "no_weights.bundle")
    (tmp_path / "junk.bundle").write_bytes(b"junk")
    with pytest.raises(BundleError, match="not a readable torch file"):
        Predictor.from_bundle(tmp_path / "junk.bundle")
    with pytest.raises(BundleError, match="missing"):
        make_bundle(tmp_path / "y.bundle", world["cfg"], {"view": world["root"] / "view_A4C.pt"})


# ----- prediction -----------------------------------------------------------------------------------------
def test_avi_and_dicom_get_view_probabilities_and_lvef(world, predictor):
    for name in ("clip.avi", "study.dcm"):
        r = predictor.predict_file(world["files"] / name)
        assert r["scorable"] and r["kind"] == "cine" and r["frames"] == 20
        probs = r["view"]["probabilities"]
        assert list(probs) == VIEWS and abs(sum(probs.values()) - 1.0) < 1e-5
        assert r["view"]["top"] == "A4C" == max(probs, key=probs.get)
        assert isinstance(r["lvef"], float) and np.isfinite(r["lvef"])
        assert r["clips"] == {"view": 1, "lvef": 2}
    assert predictor.predict_file(world["files"] / "study.dcm")["fps"] == pytest.approx(25.0)


def test_lvef_is_withheld_with_a_reason_when_the_top_view_is_not_a4c(world):
    r = Predictor.from_bundle(world["plax"]).predict_file(world["files"] / "clip.avi")
    assert r["view"]["top"] == "PLAX"
    assert r["lvef"] is None and "PLAX" in r["lvef_reason"] and "A4C" in r["lvef_reason"]


def test_unscorable_files_are_reported_with_reasons(world, predictor):
    f = world["files"]
    results = [predictor.predict_file(f / n) for n in ("still.dcm", "doppler.dcm", "corrupt.avi", "gone.avi")]
    assert [r["scorable"] for r in results] == [False] * 4
    assert results[0]["reason"] == "still image"
    assert results[1]["reason"] == "Doppler spectrum"
    assert "cannot open container" in results[2]["reason"]
    assert results[3]["reason"] == "file not found"
    assert all(set(r) == {"file", "scorable", "reason"} for r in results)


def test_backbone_runs_once_per_distinct_clip(world, predictor, monkeypatch):
    seen = []
    forward = predictor.backbone.forward
    monkeypatch.setattr(predictor.backbone, "forward", lambda x: seen.append(x.shape[0]) or forward(x))
    predictor.predict_file(world["files"] / "clip.avi")
    # 20 frames, span 7: the view's centre clip starts at 6, LVEF's two segment clips at 3 and 10
    assert sum(seen) == 3


def test_all_clips_mode_averages_every_window(world):
    base = Predictor.from_bundle(world["a4c"])
    every = Predictor.from_bundle(world["a4c"], options=PredictOptions(clip_mode="all"))
    r = every.predict_file(world["files"] / "clip.avi")
    assert r["clips"]["view"] == 3  # windows at 0, 7 and one flush with the end (13)
    one = base.predict_file(world["files"] / "clip.avi")
    assert r["lvef"] != pytest.approx(one["lvef"], abs=1e-9)


def test_attention_maps_are_written_as_png_strip_and_gif(world, tmp_path):
    p = Predictor.from_bundle(world["a4c"], options=PredictOptions(display_size=48, attention_frames=3))
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
    r = Predictor.from_bundle(world["plax"]).predict_file(world["files"] / "clip.avi", tmp_path)
    assert r["attention"]["tasks"] == ["view"]


def test_token_grid_matches_the_vit_tokens(predictor):
    assert token_grid(predictor.backbone, (3, 4, 32, 32), 8) == (2, 2, 2)
    assert token_grid(predictor.backbone, (3, 4, 32, 32), 9) is None


def test_no_patient_identifier_reaches_results_or_written_files(world, predictor, tmp_path):
    maps = tmp_path / "maps"
    results = [
        predictor.predict_file(world["files"] / n, attention_dir=maps)
        for n in ("study.dcm", "still.dcm", "doppler.dcm")
    ]
    text = json.dumps(results)
    blobs = [p.read_bytes() for p in maps.iterdir()]
    assert blobs
    for secret in SECRETS:
        assert secret not in text
    for secret in SECRETS[0], SECRETS[-1]:  # short strings turn up in compressed image bytes by chance
        assert all(secret.encode() not in b for b in blobs)
