"""EchoPrime and PanEcho release files as users have them, built from the upstream key/shape tables in
tests/fixtures/*_layout.json (read from each project's own code), never from our modules; and PanEcho's
frame arrangement."""

import json
from pathlib import Path

import pytest
import torch

from echojepa.models.checkpoint import CheckpointMismatchError
from echojepa.models.external import PanEchoVideoEncoder, panecho_frames, sinusoid_table
from echojepa.probe.backbone_base import BackboneError
from echojepa.probe.backbones import build_backbone, load_backbone_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def layout(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}_layout.json").read_text())


def random_state(table: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """A random-init state dict with exactly the upstream keys and shapes."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) for k, shape in table.items()}


def assert_loaded(backbone_state: dict, expected: dict, skip: tuple[str, ...] = ()) -> None:
    assert set(backbone_state) == set(expected)
    for k, v in expected.items():
        if k not in skip:
            assert torch.equal(backbone_state[k], v), k


# ----- EchoPrime: a bare state dict ----------
@pytest.fixture(scope="module")
def echoprime_release(tmp_path_factory) -> tuple[Path, dict]:
    state = random_state(layout("echoprime")["state_dict"], seed=0)
    path = tmp_path_factory.mktemp("echoprime") / "echo_prime_encoder.pt"
    torch.save(state, path)
    return path, state


def test_echoprime_release_loads_strictly_with_or_without_a_module_prefix(echoprime_release, tmp_path):
    path, state = echoprime_release
    bare = build_backbone(load_backbone_config("echoprime", weights=str(path)))
    assert_loaded(bare.model.state_dict(), state)
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pt")
    ddp = build_backbone(load_backbone_config("echoprime", weights=str(tmp_path / "ddp.pt")))
    assert ddp.identity() == bare.identity()


def test_echoprime_release_with_a_key_short_or_a_kinetics_head_is_refused_in_one_line(
    echoprime_release, tmp_path
):
    _, state = echoprime_release
    short = {k: v for k, v in state.items() if k != "blocks.15.mlp.3.bias"}
    torch.save(short, tmp_path / "short.pt")
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(1\): blocks\.15\.mlp\.3\.bias") as err:
        build_backbone(load_backbone_config("echoprime", weights=str(tmp_path / "short.pt")))
    assert str(tmp_path / "short.pt") in str(err.value) and "\n" not in str(err.value)
    kinetics = {**state, "head.1.weight": torch.zeros(400, 768), "head.1.bias": torch.zeros(400)}
    torch.save(kinetics, tmp_path / "kinetics.pt")
    with pytest.raises(BackboneError, match=r"head\.1\.weight checkpoint \[400, 768\] vs model \[512, 768\]"):
        build_backbone(load_backbone_config("echoprime", weights=str(tmp_path / "kinetics.pt")))


# ----- PanEcho: {'weights': full multi-task model, 'optimizer': ...} ----------
@pytest.fixture(scope="module")
def panecho_release(tmp_path_factory) -> tuple[Path, dict]:
    full = random_state(layout("panecho")["full_model_state_dict"], seed=1)
    optimizer = {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-4, "params": [0]}]}
    path = tmp_path_factory.mktemp("panecho") / "panecho.pt"
    torch.save({"weights": full, "optimizer": optimizer}, path)
    return path, full


def test_panecho_release_loads_its_backbone_strictly_and_leaves_task_heads_and_optimizer(panecho_release):
    path, full = panecho_release
    backbone = build_backbone(load_backbone_config("panecho", weights=str(path)))
    expected = {k.removeprefix("encoder."): v for k, v in full.items() if k.startswith("encoder.")}
    assert set(expected) == set(layout("panecho")["state_dict"])
    # time_encoder.pe is upstream's fixed sinusoid, rebuilt as its hubconf does; the rest is the file's
    assert_loaded(backbone.model.state_dict(), expected, skip=("time_encoder.pe",))
    torch.testing.assert_close(backbone.model.time_encoder.pe, sinusoid_table(768, 16))


def test_panecho_backbone_only_state_dict_loads_too(tmp_path):
    state = random_state(layout("panecho")["state_dict"], seed=2)
    torch.save(state, tmp_path / "backbone.pt")
    backbone = build_backbone(load_backbone_config("panecho", weights=str(tmp_path / "backbone.pt")))
    assert_loaded(backbone.model.state_dict(), state, skip=("time_encoder.pe",))


def test_panecho_other_clip_len_is_handled_as_upstream_and_longer_clips_are_refused(panecho_release):
    path, full = panecho_release
    cfg = load_backbone_config("panecho", weights=str(path), clip_len=8)
    cfg["preprocess"] = {**cfg["preprocess"], "num_frames": 8}
    short = build_backbone(cfg)
    torch.testing.assert_close(short.model.time_encoder.pe, sinusoid_table(768, 8))
    assert torch.equal(
        short.model.transformer.layers[0].linear1.weight, full["encoder.transformer.layers.0.linear1.weight"]
    )
    with pytest.raises(BackboneError, match="num_frames 16 exceeds clip_len 8"):
        build_backbone(load_backbone_config("panecho", weights=str(path), clip_len=8))


def test_panecho_file_with_a_stray_entry_or_a_missing_key_is_refused(panecho_release, tmp_path):
    _, full = panecho_release
    stray = {**full, "projector.weight": torch.zeros(4, 768)}
    torch.save({"weights": stray}, tmp_path / "stray.pt")
    with pytest.raises(BackboneError, match=r"neither the backbone.*projector\.weight"):
        build_backbone(load_backbone_config("panecho", weights=str(tmp_path / "stray.pt")))
    short = {k: v for k, v in full.items() if k != "encoder.transformer.layers.3.linear2.weight"}
    torch.save({"weights": short}, tmp_path / "short.pt")
    with pytest.raises(
        CheckpointMismatchError, match=r"missing keys \(1\): transformer\.layers\.3\.linear2\.weight"
    ):
        build_backbone(load_backbone_config("panecho", weights=str(tmp_path / "short.pt")))


# ----- PanEcho's frame arrangement ----------
def test_upstream_frame_reshape_puts_channel_time_slots_3k_to_3k_plus_2_in_image_k():
    c, t = 3, 16
    clip = (
        torch.arange(c * t, dtype=torch.float32).reshape(1, c, t, 1, 1).expand(1, c, t, 2, 2)
    )  # slot c*T + t
    images = panecho_frames(clip, upstream_frame_reshape=True)[:, :, 0, 0]  # [T, 3]: slot of each channel
    assert images[0].tolist() == [0, 1, 2]  # (R,t0), (R,t1), (R,t2)
    assert images[5].tolist() == [15, 16, 17]  # (R,t15), (G,t0), (G,t1)
    assert torch.equal(images.flatten(), torch.arange(c * t, dtype=torch.float32))
    per_frame = panecho_frames(clip, upstream_frame_reshape=False)[:, :, 0, 0]
    assert per_frame[5].tolist() == [5, 21, 37]  # frame 5 in R, G, B


def test_panecho_tokens_follow_upstreams_forward_and_the_embedding_is_their_mean():
    torch.manual_seed(0)
    model = PanEchoVideoEncoder(num_layers=1, num_heads=8, clip_len=16).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        # upstream FrameTransformer.forward, written out: reshape without moving the time axis
        feats = model.encoder(x.reshape(2 * 4, 3, 32, 32)).reshape(2, 4, 768)
        expected = model.transformer(feats + model.time_encoder.pe[0, :4])
        tokens = model(x)
        model.upstream_frame_reshape = False
        per_frame = model(x)
    torch.testing.assert_close(tokens, expected)
    assert (tokens.mean(1) - per_frame.mean(1)).abs().max() > 1e-3  # the arrangement changes the output

    cfg = load_backbone_config("panecho", weights=None, allow_random=True, num_layers=1)
    tokens_bb = build_backbone(cfg)
    embedding_bb = build_backbone({**cfg, "output": "embedding"})
    assert tokens_bb.model.upstream_frame_reshape is True  # on in conf/backbone/panecho.yaml
    with torch.no_grad():
        torch.testing.assert_close(embedding_bb(x), tokens_bb(x).mean(1, keepdim=True))
    assert tokens_bb.identity() != build_backbone({**cfg, "upstream_frame_reshape": False}).identity()
