from pathlib import Path

import pytest
import torch

from echojepa.io.weights import WeightsFileError
from echojepa.models.checkpoint import (
    CheckpointMismatchError,
    export_reference_checkpoint,
    import_reference_encoder,
    import_reference_predictor,
    load_reference_checkpoint,
    load_state_dict_strict,
    strip_prefixes,
)
from echojepa.models.predictor import Predictor
from echojepa.models.presets import build_encoder
from echojepa.models.vit import VisionTransformer

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "vjepa2_parity.pt"


class NotWeights:
    """A custom class: pickling it needs code, which a weights-only load must refuse."""

    def __init__(self) -> None:
        self.payload = "anything"


def tiny_models() -> tuple[VisionTransformer, Predictor, VisionTransformer]:
    torch.manual_seed(0)
    kw = dict(img_size=32, num_frames=4, patch_size=8, embed_dim=48, depth=2, num_heads=1)
    enc, target = VisionTransformer(**kw), VisionTransformer(**kw)
    pred = Predictor(embed_dim=48, predictor_embed_dim=24, depth=1, num_heads=1, num_mask_tokens=2)
    with torch.no_grad():
        pred.mask_tokens[1].normal_()
    return enc, pred, target


def test_export_then_import_is_bit_exact(tmp_path):
    enc, pred, target = tiny_models()
    path = tmp_path / "ckpt" / "latest.pt"
    export_reference_checkpoint(path, enc, pred, target, epoch=3, extra={"itr": 17, "lr": 1e-4})

    raw = load_reference_checkpoint(path)
    assert raw["epoch"] == 3 and raw["itr"] == 17
    assert all(k.startswith("module.backbone.") for k in raw["encoder"])
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]  # no temp file left behind

    enc2, pred2, target2 = tiny_models()
    with torch.no_grad():
        for p in [*enc2.parameters(), *pred2.parameters(), *target2.parameters()]:
            p.add_(1.0)
    import_reference_encoder(path, enc2, which="encoder")
    import_reference_encoder(path, target2)
    import_reference_predictor(path, pred2)
    for a, b in [(enc, enc2), (pred, pred2), (target, target2)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_extra_entries_may_not_shadow_models(tmp_path):
    enc, pred, target = tiny_models()
    with pytest.raises(ValueError, match="overwrite"):
        export_reference_checkpoint(tmp_path / "c.pt", enc, pred, target, epoch=0, extra={"encoder": {}})


def test_export_without_predictor_omits_the_entry(tmp_path):
    enc, pred, target = tiny_models()
    path = tmp_path / "mae.pt"
    export_reference_checkpoint(path, enc, None, target, epoch=1)
    assert "predictor" not in load_reference_checkpoint(path)
    with pytest.raises(ValueError, match="no model entry 'predictor'"):
        import_reference_predictor(path, pred)


def test_pickled_custom_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"encoder": {}, "extra": NotWeights()}, path)
    with pytest.raises(ValueError, match="refused"):
        load_reference_checkpoint(path)


def test_missing_file_and_missing_entry_are_named(tmp_path):
    with pytest.raises(WeightsFileError, match="nope.pt"):
        load_reference_checkpoint(tmp_path / "nope.pt")
    enc, _, _ = tiny_models()
    with pytest.raises(ValueError, match="no model entry 'target_encoder'"):
        import_reference_encoder({"encoder": {}}, enc)


def test_strip_prefixes_handles_nested_wrappers_and_refuses_collisions():
    t = torch.zeros(1)
    out = strip_prefixes({"module.module.backbone.norm.weight": t, "backbone.blocks.0.x": t, "norm.bias": t})
    assert set(out) == {"norm.weight", "blocks.0.x", "norm.bias"}
    with pytest.raises(ValueError, match="collide"):
        strip_prefixes({"module.norm.weight": t, "norm.weight": t})


def test_missing_extra_and_misshaped_keys_are_each_refused_by_name():
    enc, _, _ = tiny_models()
    good = enc.state_dict()
    missing = {k: v for k, v in good.items() if k != "blocks.1.mlp.fc1.bias"}
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): blocks\.1\.mlp\.fc1\.bias"):
        load_state_dict_strict(enc, missing)
    extra = {**good, "pos_embed": torch.zeros(1, 32, 48)}
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys \(1\): pos_embed"):
        load_state_dict_strict(enc, extra)
    bad = {**good, "norm.weight": torch.ones(47)}
    with pytest.raises(CheckpointMismatchError, match=r"norm\.weight checkpoint \[47\] vs model \[48\]"):
        load_state_dict_strict(enc, bad, what="my encoder")


def test_partial_load_only_when_asked_and_reports_what_was_skipped():
    enc, _, _ = tiny_models()
    state = {k: torch.full_like(v, 0.5) for k, v in enc.state_dict().items()}
    state["norm.weight"] = torch.ones(47)
    report = load_state_dict_strict(enc, state, allow_partial=True)
    assert [k for k, *_ in report.mismatched] == ["norm.weight"] and not report.ok
    assert torch.all(enc.blocks[0].norm1.weight == 0.5) and torch.all(enc.norm.weight == 1)
    with pytest.raises(CheckpointMismatchError, match="no key fits"):
        load_state_dict_strict(enc, {"foo": torch.zeros(1)}, allow_partial=True)


def reference_encoder_shapes(dim: int, depth: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """The released V-JEPA 2 encoder key list and shapes, written from the published layout."""
    shapes: dict[str, tuple[int, ...]] = {
        "patch_embed.proj.weight": (dim, 3, 2, 16, 16),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    for n in range(depth):
        b = f"blocks.{n}."
        shapes |= {
            b + "norm1.weight": (dim,), b + "norm1.bias": (dim,),
            b + "attn.qkv.weight": (3 * dim, dim), b + "attn.qkv.bias": (3 * dim,),
            b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,),
            b + "norm2.weight": (dim,), b + "norm2.bias": (dim,),
            b + "mlp.fc1.weight": (hidden, dim), b + "mlp.fc1.bias": (hidden,),
            b + "mlp.fc2.weight": (dim, hidden), b + "mlp.fc2.bias": (dim,),
        }  # fmt: skip
    return shapes


@pytest.mark.parametrize(
    ("name", "dim", "depth", "hidden"), [("vitl", 1024, 24, 4096), ("vitg", 1408, 40, 6144)]
)
def test_released_key_layout_loads_strictly_into_large_presets(name, dim, depth, hidden):
    state = {
        "module.backbone." + k: torch.empty(s, device="meta")
        for k, s in reference_encoder_shapes(dim, depth, hidden).items()
    }
    with torch.device("meta"):
        enc = build_encoder(name)
    report = import_reference_encoder({"target_encoder": state}, enc, assign=True)
    assert report.ok and len(report.loaded) == len(state)


@pytest.fixture(scope="module")
def parity():
    if not FIXTURE.is_file():
        pytest.fail(f"parity fixture missing: {FIXTURE}")
    return torch.load(FIXTURE, weights_only=True)


def parity_models(parity, repeat_layout: bool) -> tuple[VisionTransformer, Predictor]:
    c = parity["config"]
    common = dict(mlp_ratio=c["mlp_ratio"], norm_eps=c["layernorm_eps"], rope_repeat_layout=repeat_layout)
    enc = VisionTransformer(
        img_size=c["height"],
        num_frames=c["frames"],
        patch_size=c["patch_size"],
        tubelet_size=c["tubelet_size"],
        embed_dim=c["embed_dim"],
        depth=c["depth"],
        num_heads=c["num_heads"],
        **common,
    ).eval()
    pred = Predictor(
        embed_dim=c["embed_dim"],
        predictor_embed_dim=c["predictor_embed_dim"],
        depth=c["predictor_depth"],
        num_heads=c["predictor_num_heads"],
        num_mask_tokens=c["num_mask_tokens"],
        **common,
    ).eval()
    import_reference_encoder(parity["checkpoint"], enc)
    import_reference_predictor(parity["checkpoint"], pred)
    return enc, pred


def parity_errors(parity, repeat_layout: bool) -> list[float]:
    enc, pred = parity_models(parity, repeat_layout)
    ctx_idx, tgt_idx = parity["context_index"], parity["target_index"]
    with torch.no_grad():
        full = enc(parity["clip"])
        ctx = enc(parity["clip"], keep=ctx_idx)
        prediction = pred(
            ctx, ctx_idx, tgt_idx, enc.grid_size, mask_token_id=parity["config"]["mask_token_used"]
        )
    return [
        (full - parity["expected_full"]).abs().max().item(),
        (ctx - parity["expected_context"]).abs().max().item(),
        (prediction - parity["expected_prediction"]).abs().max().item(),
    ]


def test_released_weights_reproduce_official_outputs_with_repeat_layout(parity):
    assert parity["config"]["rope_sincos"] == "repeat"
    assert max(parity_errors(parity, repeat_layout=True)) < 1e-4


def test_interleaved_layout_does_not_reproduce_released_outputs(parity):
    assert min(parity_errors(parity, repeat_layout=False)) > 1e-4
