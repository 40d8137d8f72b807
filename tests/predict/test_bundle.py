"""echojepa.predict.bundle: a self-contained, weights-only model bundle and every refusal on reading it."""

from __future__ import annotations

import pytest
import torch

from echojepa.models.checkpoint import export_reference_checkpoint
from echojepa.predict import BundleError, InferenceSession, load_bundle, make_bundle
from echojepa.probe.backbones import build_backbone, load_backbone_config

from .helpers import PRE, backbone_cfg, write_probes


def test_bundle_is_weights_only_and_rebuilds_the_same_backbone(world, session):
    ckpt = torch.load(world["a4c"], weights_only=True)
    assert set(ckpt["tasks"]) == {"view", "lvef"}
    assert ckpt["tasks"]["lvef"]["clip"]["segments"] == 2  # conf/task/lvef.yaml's protocol
    assert session.backbone.identity() == world["backbone"].identity()
    clip = torch.rand(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(session.backbone(clip), world["backbone"](clip))


def test_load_bundle_gives_the_backbone_and_each_tasks_chosen_head(world):
    backbone, heads = load_bundle(world["a4c"])
    assert backbone.identity() == world["backbone"].identity()
    assert set(heads) == {"view", "lvef"} and all(h.chosen == 0 for h in heads.values())
    assert heads["view"].task.class_names[0] == "A4C" and heads["lvef"].task.kind == "regression"
    assert (heads["lvef"].spec.segments, heads["view"].spec.segments) == (2, 1)


def test_checkpoint_backbone_bundle_needs_no_checkpoint_file_afterwards(tmp_path):
    torch.manual_seed(0)
    encoder = build_backbone(backbone_cfg()).encoder
    ckpt = tmp_path / "reference.pt"
    export_reference_checkpoint(ckpt, encoder, None, encoder, epoch=1)
    cfg = load_backbone_config("echojepa_demo", checkpoint=str(ckpt), model="cpu_tiny", preprocess=dict(PRE))
    backbone = build_backbone(cfg)
    bundle = make_bundle(tmp_path / "b.bundle", cfg, write_probes(tmp_path, backbone, "A4C"))
    ckpt.unlink()
    assert InferenceSession.from_bundle(bundle).backbone.identity() == backbone.identity()
    tampered = torch.load(bundle, weights_only=True)
    tampered["backbone"]["config"]["model"] = "cpu_tiny"  # a preset name, not the resolved architecture
    torch.save(tampered, tmp_path / "no_arch.bundle")
    with pytest.raises(BundleError, match=r"no_arch\.bundle: backbone config has no resolved model arch"):
        load_bundle(tmp_path / "no_arch.bundle")


def test_bundle_refuses_probes_trained_on_another_backbone(world, tmp_path):
    probes = write_probes(tmp_path, world["backbone"], "A4C", identity="0" * 64)
    with pytest.raises(BundleError, match="not on the bundled one"):
        make_bundle(tmp_path / "x.bundle", world["cfg"], probes)


def test_loading_refuses_a_bundle_whose_probe_identity_was_changed(world, tmp_path):
    ckpt = torch.load(world["a4c"], weights_only=True)
    ckpt["tasks"]["lvef"]["probe"]["meta"]["backbone_identity"] = "f" * 64
    torch.save(ckpt, tmp_path / "tampered.bundle")
    with pytest.raises(BundleError, match="refusing"):
        InferenceSession.from_bundle(tmp_path / "tampered.bundle")


def test_loading_refuses_missing_bundles_probes_and_weights(world, tmp_path):
    with pytest.raises(FileNotFoundError):
        InferenceSession.from_bundle(tmp_path / "absent.bundle")
    ckpt = torch.load(world["a4c"], weights_only=True)
    no_lvef = {**ckpt, "tasks": {"view": ckpt["tasks"]["view"]}}
    torch.save(no_lvef, tmp_path / "no_lvef.bundle")
    with pytest.raises(BundleError, match="lvef"):
        InferenceSession.from_bundle(tmp_path / "no_lvef.bundle")
    no_weights = {**ckpt, "backbone": {**ckpt["backbone"], "state_dict": {}}}
    torch.save(no_weights, tmp_path / "no_weights.bundle")
    with pytest.raises(BundleError, match="no backbone weights"):
        InferenceSession.from_bundle(tmp_path / "no_weights.bundle")
    (tmp_path / "junk.bundle").write_bytes(b"junk")
    with pytest.raises(BundleError, match="not a readable torch file"):
        InferenceSession.from_bundle(tmp_path / "junk.bundle")
    with pytest.raises(BundleError, match="missing"):
        make_bundle(tmp_path / "y.bundle", world["cfg"], {"view": world["root"] / "view_A4C.pt"})
