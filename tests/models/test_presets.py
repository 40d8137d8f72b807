import pytest
import torch
from omegaconf import OmegaConf

from echojepa.models.predictor import Predictor
from echojepa.models.presets import (
    ENCODER_PRESETS,
    MODEL_CONF_DIR,
    MODEL_PRESETS,
    build_encoder,
    build_predictor,
)
from echojepa.models.vit import VisionTransformer


def encoder_params(name: str) -> int:
    with torch.device("meta"):
        enc = build_encoder(name)
    return sum(p.numel() for p in enc.parameters())


def test_all_presets_are_read_from_conf():
    expected = {"vitt", "vits", "vitb", "vitl", "vith", "vitg", "cpu_tiny", "cpu_small"}
    assert expected <= set(MODEL_PRESETS) == set(ENCODER_PRESETS)
    assert {"img_size", "num_frames", "embed_dim"} <= set(ENCODER_PRESETS["vitl"])


@pytest.mark.parametrize(("name", "published"), [("vitl", 303.9e6), ("vith", 631.6e6), ("vitg", 1.012e9)])
def test_large_presets_match_published_encoder_parameter_counts(name, published):
    # encoder only: patch embedding + blocks + final norm (no predictor, no pos_embed: RoPE)
    assert encoder_params(name) == pytest.approx(published, rel=0.005)


def test_giant_mlp_is_6144_wide_with_64_dim_heads():
    with torch.device("meta"):
        enc = build_encoder("vitg")
    assert enc.blocks[0].mlp.fc1.out_features == 6144
    assert enc.embed_dim // enc.num_heads == 64 and len(enc.blocks) == 40


def test_widths_depths_heads_of_reference_presets():
    table = {"vitt": (192, 12, 3), "vits": (384, 12, 6), "vitb": (768, 12, 12), "vitl": (1024, 24, 16)}
    for name, (dim, depth, heads) in table.items():
        kw = ENCODER_PRESETS[name]
        assert (kw["embed_dim"], kw["depth"], kw["num_heads"]) == (dim, depth, heads)


def test_cpu_tiny_builds_and_runs_at_its_clip_size():
    torch.manual_seed(0)
    enc = build_encoder("cpu_tiny")
    pred = build_predictor("cpu_tiny", enc.embed_dim)
    kw = MODEL_PRESETS["cpu_tiny"]
    x = torch.randn(1, 3, kw["num_frames"], kw["img_size"], kw["img_size"])
    z = enc(x)
    assert z.shape == (1, enc.num_patches, enc.embed_dim)
    idx = torch.arange(enc.num_patches)[None]
    assert pred(z[:, :10], idx[:, :10], idx[:, 10:20], enc.grid_size).shape == (1, 10, enc.embed_dim)


def test_overrides_win_and_unknown_options_are_refused():
    enc = build_encoder("cpu_tiny", depth=1, rope_repeat_layout=True)
    assert len(enc.blocks) == 1 and enc.rope_repeat_layout
    with pytest.raises(ValueError, match="unknown VisionTransformer options"):
        build_encoder("cpu_tiny", dept=1)
    with pytest.raises(ValueError, match="unknown model preset"):
        build_encoder("vitz")


def test_hydra_style_node_shares_rope_flag_between_encoder_and_predictor():
    cfg = OmegaConf.create({"model": OmegaConf.load(MODEL_CONF_DIR / "cpu_tiny.yaml")})
    cfg.model.rope_repeat_layout = True
    enc = build_encoder(cfg.model)
    pred = build_predictor(cfg.model, enc.embed_dim)
    assert isinstance(enc, VisionTransformer) and isinstance(pred, Predictor)
    assert enc.rope_repeat_layout and pred.rope_repeat_layout
    assert enc.grid_size == (cfg.model.num_frames // 2, cfg.model.img_size // 16, cfg.model.img_size // 16)


def test_bare_kwargs_build_without_presets():
    enc = build_encoder({"img_size": 32, "num_frames": 4, "embed_dim": 48, "depth": 1, "num_heads": 1})
    pred = build_predictor({"predictor_embed_dim": 24, "depth": 1, "num_heads": 1}, enc.embed_dim)
    assert enc.embed_dim == 48 and pred.predictor_proj.out_features == 48
