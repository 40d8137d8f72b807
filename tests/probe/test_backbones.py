import argparse
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from echojepa.data.preprocess import Preprocess, preprocess_from_config
from echojepa.models.checkpoint import CheckpointMismatchError, export_reference_checkpoint
from echojepa.models.presets import build_encoder
from echojepa.probe.backbone_base import Backbone, BackboneError, BackboneMismatchError
from echojepa.probe.backbones import (
    BACKBONE_CONF_DIR,
    BACKBONE_KINDS,
    build_backbone,
    build_backbone_from_state,
    load_backbone_config,
)
from echojepa.probe.external_backbones import EchoPrimeBackbone, PanEchoBackbone
from echojepa.probe.pixel_stats import PIXEL_STAT_FEATURES


def assert_frozen(backbone: Backbone) -> None:
    assert not backbone.training
    assert all(not p.requires_grad for p in backbone.parameters())
    nn.Sequential(backbone).train()  # a parent switching to train mode must not unfreeze it
    assert not backbone.training and all(not m.training for m in backbone.modules())


def tiny_clip(batch: int = 2, frames: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def tiny_vit(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_encoder("cpu_tiny")


def export(path: Path, target: nn.Module, online: nn.Module | None = None) -> Path:
    export_reference_checkpoint(path, online if online is not None else target, None, target, epoch=1)
    return path


def ckpt_cfg(path: Path, **extra) -> dict:
    return load_backbone_config("echojepa_demo", checkpoint=str(path), **extra)


# ----- presets ----------
def test_every_backbone_preset_parses_with_a_known_kind_and_preprocessing():
    names = sorted(p.stem for p in BACKBONE_CONF_DIR.glob("*.yaml"))
    assert {
        "echojepa_demo",
        "vjepa2_vitl",
        "vjepa2_vitg",
        "random_vit",
        "pixel_stats",
        "echoprime",
        "panecho",
    } <= set(names)
    for name in names:
        cfg = load_backbone_config(name)
        assert cfg["kind"] in BACKBONE_KINDS, name
        pre = preprocess_from_config(cfg["preprocess"], img_size=224, num_frames=16)
        assert isinstance(pre, Preprocess) and pre.segments >= 1


def test_echoprime_preprocess_converts_published_0_255_statistics_to_0_1():
    pre = preprocess_from_config(load_backbone_config("echoprime")["preprocess"])
    assert (pre.img_size, pre.num_frames, pre.frame_step) == (224, 16, 2)
    assert [round(m * 255, 2) for m in pre.mean] == [29.11, 28.08, 29.10]
    assert [round(s * 255, 2) for s in pre.std] == [47.99, 46.46, 47.20]


def test_unknown_kind_and_unknown_preprocess_keys_are_refused():
    with pytest.raises(ValueError, match="unknown backbone kind"):
        build_backbone({"kind": "resnet"})
    with pytest.raises(ValueError, match="unknown keys"):
        preprocess_from_config({"img_size": 8, "num_frames": 2, "mean": [0] * 3, "std": [1] * 3, "fps": 3})


# ----- ViT kinds ----------
def test_random_vit_is_a_seeded_frozen_token_encoder_with_preset_preprocessing():
    backbone = build_backbone(load_backbone_config("random_vit"))
    assert backbone.kind == "random" and backbone.embed_dim == 96
    assert (backbone.preprocess.img_size, backbone.preprocess.num_frames) == (64, 16)  # from the preset
    tokens = backbone(tiny_clip())
    assert tokens.shape == (2, 2 * 2 * 2, 96) and not tokens.requires_grad
    assert_frozen(backbone)
    same = build_backbone(load_backbone_config("random_vit"))
    other = build_backbone(load_backbone_config("random_vit", seed=1))
    assert same.identity() == backbone.identity() != other.identity()
    assert torch.equal(same(tiny_clip()), tokens)


def test_building_the_random_floor_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_backbone(load_backbone_config("random_vit"))
    assert torch.equal(torch.rand(3), expected)


def test_checkpoint_kind_gives_the_exported_target_encoder_features(tmp_path):
    target, online = tiny_vit(0), tiny_vit(1)
    path = export(tmp_path / "run" / "reference.pt", target, online)
    x = tiny_clip()

    backbone = build_backbone(ckpt_cfg(path))
    assert backbone.kind == "checkpoint" and backbone.name == "echojepa_demo"
    assert_frozen(backbone)
    with torch.no_grad():
        assert torch.equal(backbone(x), target.eval()(x))
        online_tokens = online.eval()(x)
    assert not torch.equal(backbone(x), online_tokens)
    assert torch.equal(build_backbone(ckpt_cfg(path, which="encoder"))(x), online_tokens)


def test_checkpoint_kind_reads_a_lightning_checkpoint_and_its_encoder_config(tmp_path):
    target = tiny_vit(0)
    encoder_cfg = {"patch_size": 16, "tubelet_size": 2, "embed_dim": 96, "depth": 4, "num_heads": 2}
    state = {f"target_encoder.{k}": v for k, v in target.state_dict().items()}
    state |= {f"encoder.{k}": torch.zeros_like(v) for k, v in target.state_dict().items()}
    ckpt = {
        "state_dict": state,
        "hyper_parameters": {"encoder": encoder_cfg, "img_size": 64, "num_frames": 16},
        "pytorch-lightning_version": "2.6.0",
    }
    torch.save(ckpt, tmp_path / "last.ckpt")
    backbone = build_backbone(ckpt_cfg(tmp_path / "last.ckpt", model=None))
    x = tiny_clip()
    with torch.no_grad():
        assert torch.equal(backbone(x), target.eval()(x))
    torch.save(
        {"state_dict": {"encoder.w": torch.zeros(1), "decoder.w": torch.zeros(1)}}, tmp_path / "mae.ckpt"
    )
    with pytest.raises(ValueError, match=r"no 'target_encoder' weights.*\['decoder', 'encoder'\]"):
        build_backbone(ckpt_cfg(tmp_path / "mae.ckpt"))


def test_checkpoint_kind_refuses_a_missing_or_unset_file(tmp_path):
    missing = tmp_path / "nowhere" / "reference.pt"
    with pytest.raises(BackboneError, match=f"{missing}: checkpoint file not found"):
        build_backbone(ckpt_cfg(missing))
    with pytest.raises(BackboneError, match="`checkpoint` is not set"):
        build_backbone(load_backbone_config("echojepa_demo"))  # checkpoint: ???


def bad_weights_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each unusable file a user may point a backbone at, with the reason its error must give."""
    good = tmp_path / "good.pt"
    torch.save({"target_encoder": {"w": torch.zeros(64)}}, good)
    files = {
        "missing": (tmp_path / "absent.pt", "not found"),
        "directory": (tmp_path, "not a file"),
        "empty": (tmp_path / "empty.pt", "empty"),
        "truncated": (tmp_path / "truncated.pt", "not a readable torch file"),
        "garbage": (tmp_path / "garbage.pt", "not a readable torch file"),
        "pickled object": (tmp_path / "object.pt", "Python objects besides tensors"),
        "a list": (tmp_path / "list.pt", "holds a list"),
    }
    files["empty"][0].write_bytes(b"")
    files["truncated"][0].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["garbage"][0].write_bytes(b"this is not a checkpoint\n" * 20)
    torch.save({"args": argparse.Namespace(lr=1.0)}, files["pickled object"][0])
    torch.save([torch.zeros(1)], files["a list"][0])
    return files


@pytest.mark.parametrize("preset, key", [("echojepa_demo", "checkpoint"), ("echoprime", "weights")])
def test_a_bad_weights_file_is_one_line_naming_the_file_and_the_reason(tmp_path, preset, key):
    for case, (path, reason) in bad_weights_files(tmp_path).items():
        with pytest.raises(BackboneError) as err:
            build_backbone(load_backbone_config(preset, **{key: str(path)}))
        message = str(err.value)
        assert str(path) in message and reason in message, case
        assert "\n" not in message and "weights_only" not in message, case


def test_a_checkpoint_of_another_kind_is_refused_in_one_line(tmp_path):
    torch.save({f"blocks.{i}.w": torch.zeros(2) for i in range(40)}, tmp_path / "other.pt")
    with pytest.raises(BackboneError, match=r"no model entry 'target_encoder'.*\(40 in all\)") as err:
        build_backbone(ckpt_cfg(tmp_path / "other.pt"))
    assert "\n" not in str(err.value)


def test_probe_cli_reports_a_bad_backbone_checkpoint_in_one_line_with_exit_2(tmp_path):
    world = tmp_path / "world"
    world.mkdir()
    (world / "manifest.json").write_text("{}")  # a world is "there": the run reaches the backbone first
    (tmp_path / "truncated.pt").write_bytes(b"PK\x03\x04 not really a zip")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "echojepa.cli.probe",
            "backbone=echojepa_demo",
            f"backbone.checkpoint={tmp_path / 'truncated.pt'}",
            f"synth_root={world}",
            f"store={tmp_path / 'store'}",
            f"cache_dir={tmp_path / 'cache'}",
            "mlflow.enabled=false",
        ],
        cwd=tmp_path,
        env={**os.environ, "ECHOJEPA_RUNS": str(tmp_path / "runs")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "truncated.pt") in lines[0], r.stderr[-2000:]
    assert "not a readable torch file" in lines[0] and "Traceback" not in r.stderr


def test_checkpoint_kind_refuses_a_mismatched_checkpoint_naming_the_keys(tmp_path):
    torch.manual_seed(0)
    shallow = build_encoder("cpu_tiny", depth=2)
    path = export(tmp_path / "shallow.pt", shallow)
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(\d+\): blocks\.2\."):
        build_backbone(ckpt_cfg(path))
    with pytest.raises(ValueError, match="no model entry 'predictor'"):
        build_backbone(ckpt_cfg(path, which="predictor"))  # exported without a predictor


def test_identity_follows_the_weights_not_the_file_location(tmp_path):
    target = tiny_vit(0)
    a = build_backbone(ckpt_cfg(export(tmp_path / "a.pt", target)))
    b = build_backbone(ckpt_cfg(export(tmp_path / "copy" / "b.pt", target), name="renamed"))
    assert a.identity() == b.identity()
    with torch.no_grad():
        target.blocks[0].attn.qkv.bias[0] += 1e-3
    c = build_backbone(ckpt_cfg(export(tmp_path / "c.pt", target)))
    assert c.identity() != a.identity()
    d = build_backbone(
        ckpt_cfg(tmp_path / "a.pt", preprocess={**ckpt_cfg(tmp_path)["preprocess"], "segments": 2})
    )
    assert d.identity() != a.identity()  # preprocessing is part of what the features mean


def test_vjepa2_kind_uses_the_released_rope_layout(tmp_path):
    path = export(tmp_path / "released.pt", tiny_vit(0))
    cfg = {**load_backbone_config("vjepa2_vitl"), "checkpoint": str(path), "model": "cpu_tiny"}
    cfg["preprocess"] = {**cfg["preprocess"], "img_size": None, "num_frames": None}
    released = build_backbone(cfg)
    assert released.kind == "vjepa2" and released.encoder.rope_repeat_layout is True
    ours = build_backbone(ckpt_cfg(path))
    assert ours.encoder.rope_repeat_layout is False
    assert not torch.allclose(released(tiny_clip()), ours(tiny_clip()))


# ----- pixel statistics ----------
def pulsing_disk(amplitude: float, frames: int = 32, size: int = 32, cycles: int = 2) -> torch.Tensor:
    """A bright disk whose radius oscillates `cycles` times over the clip: [1, 3, T, H, W] in 0-1."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    r = torch.sqrt((yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2)
    t = torch.arange(frames)
    radius = 8 + amplitude * torch.sin(2 * math.pi * cycles * t / frames)  # [T]
    video = (r[None] <= radius[:, None, None]).float() * 0.8 + 0.1  # [T, H, W]
    return video[None, None].expand(1, 3, -1, -1, -1).contiguous()


def test_pixel_stats_separates_clips_by_motion_amplitude():
    backbone = build_backbone({**load_backbone_config("pixel_stats"), "grid": 4, "layout": "cells"})
    assert backbone.embed_dim == len(PIXEL_STAT_FEATURES)
    assert_frozen(backbone)
    col = {name: i for i, name in enumerate(PIXEL_STAT_FEATURES)}
    small, large, still = (backbone(pulsing_disk(a)) for a in (1.0, 5.0, 0.0))
    assert small.shape == (1, 16, len(PIXEL_STAT_FEATURES))
    for feature in ("std", "dominant_amplitude", "motion", "range"):
        assert large[0, :, col[feature]].sum() > 2 * small[0, :, col[feature]].sum() > 0, feature
        assert still[0, :, col[feature]].abs().max() < 1e-6, feature
    moving = large[0, :, col["dominant_amplitude"]] > 1e-3
    assert torch.allclose(large[0, moving, col["dominant_frequency"]], torch.tensor(2 / 32))
    # position features make the cells distinguishable without a positional embedding in the probe
    assert torch.unique(large[0, :, [col["row"], col["col"]]], dim=0).shape[0] == 16


def test_pixel_stats_vector_layout_is_one_token_of_every_cell_in_log_space():
    cells = build_backbone({**load_backbone_config("pixel_stats"), "grid": 4, "layout": "cells"})
    vector = build_backbone({**load_backbone_config("pixel_stats"), "grid": 4, "layout": "vector"})
    clip = pulsing_disk(5.0)
    tokens = vector(clip)  # [1, 1, 16 * 6]
    assert tokens.shape == (1, 1, 16 * 6) and vector.embed_dim == 16 * 6
    per_cell = tokens.view(16, 6)
    c = cells(clip)[0]
    col = {name: i for i, name in enumerate(PIXEL_STAT_FEATURES)}
    torch.testing.assert_close(per_cell[:, 0], c[:, col["mean"]])
    torch.testing.assert_close(per_cell[:, 1], (c[:, col["std"]] + 1e-4).log())


# ----- EchoPrime ----------
@pytest.fixture(scope="module")
def echoprime() -> Backbone:
    return build_backbone(load_backbone_config("echoprime", weights=None, allow_random=True))


def test_echoprime_random_build_gives_one_512d_token_on_16x224_clips(echoprime):
    assert isinstance(echoprime, EchoPrimeBackbone) and echoprime.embed_dim == 512
    assert echoprime.input_size == (16, 224, 224)
    assert_frozen(echoprime)
    tokens = echoprime(torch.rand(1, 3, 16, 224, 224))
    assert tokens.shape == (1, 1, 512) and torch.isfinite(tokens).all()
    with pytest.raises(ValueError, match="16 x 224 x 224"):
        echoprime(torch.rand(1, 3, 8, 224, 224))


def test_echoprime_needs_weights_unless_random_is_explicitly_allowed(tmp_path):
    with pytest.raises(BackboneError, match="allow_random"):
        build_backbone(load_backbone_config("echoprime", weights=None))
    with pytest.raises(BackboneError, match="echo_prime_encoder.pt: echoprime weights file not found"):
        build_backbone(load_backbone_config("echoprime", weights=str(tmp_path / "echo_prime_encoder.pt")))


def test_echoprime_token_output_is_what_its_head_pools():
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    torch.manual_seed(0)
    blocks = [
        MSBlockConfig(1, 96, 96, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 2, 2]),
        MSBlockConfig(2, 96, 192, [3, 3, 3], [3, 3, 3], [1, 2, 2], [1, 1, 1]),
    ]
    mvit = MViT(
        spatial_size=(32, 32),
        temporal_size=4,
        block_setting=blocks,
        residual_pool=True,
        residual_with_cls_embed=False,
        rel_pos_embed=True,
        proj_after_attn=True,
        num_classes=12,
    )
    pre = Preprocess(32, 4, 2, None, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    backbone = EchoPrimeBackbone(mvit, "tokens", "tiny", pre, {"kind": "echoprime"}).freeze()
    assert backbone.input_size == (4, 32, 32) and backbone.embed_dim == 192
    x = tiny_clip(batch=2, frames=4, size=32)
    tokens = backbone(x)
    assert tokens.shape == (2, 1 + 2 * 4 * 4, 192)
    with torch.no_grad():
        assert torch.allclose(mvit.head(tokens[:, 0]), mvit(x), atol=1e-5)


# ----- PanEcho ----------
@pytest.fixture(scope="module")
def panecho() -> Backbone:
    return build_backbone(load_backbone_config("panecho", weights=None, allow_random=True, seed=3))


def test_panecho_random_build_gives_one_768d_token_per_frame(panecho):
    assert panecho.kind == "panecho" and panecho.embed_dim == 768
    assert panecho.preprocess.mean == (0.485, 0.456, 0.406) and panecho.preprocess.frame_step == 1
    assert_frozen(panecho)
    tokens = panecho(tiny_clip(batch=1, frames=3, size=32))
    assert tokens.shape == (1, 3, 768) and torch.isfinite(tokens).all()
    with pytest.raises(ValueError, match="covers 16 frames"):
        panecho(tiny_clip(batch=1, frames=17, size=32))


# ----- token grid: where each token sits on the clip ----------
def test_vit_token_grid_is_the_tubelet_grid_its_tokens_come_in():
    pre = {**load_backbone_config("random_vit")["preprocess"], "img_size": 32, "num_frames": 4}
    vit = build_backbone(load_backbone_config("random_vit", preprocess=pre))
    grid = vit.token_grid((3, 4, 32, 32))
    assert grid == (2, 2, 2) and math.prod(grid) == vit(tiny_clip(batch=1)).shape[1]
    with pytest.raises(ValueError, match="does not tile"):
        vit.token_grid((3, 4, 30, 32))


def test_pixel_stats_token_grid_is_the_cell_grid_only_for_the_cells_layout():
    cfg = {**load_backbone_config("pixel_stats"), "grid": 4}
    cells = build_backbone({**cfg, "layout": "cells"})
    assert cells.token_grid((3, 4, 32, 32)) == (1, 4, 4)
    assert math.prod(cells.token_grid((3, 4, 32, 32))) == cells(tiny_clip(batch=1)).shape[1]
    assert build_backbone({**cfg, "layout": "vector"}).token_grid((3, 4, 32, 32)) is None


def test_echoprime_tokens_are_no_grid(echoprime):
    # embedding: one pooled token; tokens: the class token comes before MViT's grid
    assert echoprime.token_grid((3, 16, 224, 224)) is None


def test_panecho_tokens_are_frames_only_without_the_upstream_frame_reshape(panecho):
    # upstream reshape (the default): token k mixes (channel, time) slots 3k..3k+2 of several frames
    assert panecho.model.upstream_frame_reshape and panecho.token_grid((3, 3, 32, 32)) is None
    per_frame = build_backbone(
        load_backbone_config("panecho", weights=None, allow_random=True, upstream_frame_reshape=False)
    )
    assert per_frame.token_grid((3, 3, 32, 32)) == (3, 1, 1)
    assert per_frame(tiny_clip(batch=1, frames=3)).shape[1] == 3
    pooled = PanEchoBackbone(per_frame.model, "embedding", "pooled", per_frame.preprocess, per_frame.config)
    assert pooled.token_grid((3, 3, 32, 32)) is None


# ----- rebuilding from a recorded config and state (model bundles) ----------
def test_a_backbone_rebuilt_from_its_config_and_state_needs_no_weights_file(tmp_path):
    path = export(tmp_path / "reference.pt", tiny_vit(seed=5))
    built = build_backbone(ckpt_cfg(path))
    state = {k: v.clone() for k, v in built.state_dict().items()}
    path.unlink()
    rebuilt = build_backbone_from_state(built.config, state)
    assert rebuilt.identity() == built.identity()
    assert_frozen(rebuilt)
    torch.testing.assert_close(rebuilt(tiny_clip(size=64, frames=16)), built(tiny_clip(size=64, frames=16)))


def test_rebuilding_refuses_a_config_without_architecture_and_a_state_that_does_not_fit(tmp_path):
    built = build_backbone(ckpt_cfg(export(tmp_path / "reference.pt", tiny_vit(seed=5))))
    with pytest.raises(BackboneError, match="no resolved model architecture"):
        build_backbone_from_state({**built.config, "model": "cpu_tiny"}, built.state_dict())
    state = dict(built.state_dict())
    state.pop(next(iter(state)))
    with pytest.raises(BackboneMismatchError, match="missing keys") as err:
        build_backbone_from_state(built.config, state, "bundled backbone")
    assert "\n" not in str(err.value) and "bundled backbone" in str(err.value)
