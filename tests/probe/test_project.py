"""One probe for every backbone: the fixed train-fit projection to the probe width, equal trainable
parameter counts across backbones, and the fixed space-time position code."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR
from echojepa.probe.backbones import build_backbone, load_backbone_config
from echojepa.probe.bank import HeadSpec, ProbeBank, build_probe_bank
from echojepa.probe.checkpoint import load_probe, save_probe
from echojepa.probe.heads import AttentiveProbe
from echojepa.probe.position import cell_positions, spacetime_code
from echojepa.probe.project import fit_projection, projection_for, sample_train_tokens
from echojepa.probe.task import ProbeTask
from echojepa.probe.training import bank_config


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _correlated_tokens(m: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) * rng.uniform(0.01, 10.0, size=d)  # channels of very different scales
    return (rng.normal(size=(m, d)) @ mix + rng.normal(size=d) * 5).astype(np.float32)


# ----- the projection ---------------------------------------------------------------------------------
def test_projection_whitens_the_training_tokens_and_pads_a_narrow_backbone():
    tokens = _correlated_tokens(4000, 6)
    shift, weight = fit_projection(tokens, width=10, eps=1e-6)
    assert shift.shape == (6,) and weight.shape == (6, 10)
    y = (tokens - shift) @ weight
    np.testing.assert_allclose(np.cov(y[:, :6].T), np.eye(6), atol=1e-3)  # whitened: scale-free
    assert np.all(weight[:, 6:] == 0)  # narrower than the probe: zero-padded, nothing lost


def test_projection_keeps_the_leading_components_of_a_wide_backbone():
    rng = np.random.default_rng(1)
    tokens = rng.normal(size=(3000, 8)) * rng.uniform(0.1, 10.0, size=8)  # independent channels
    shared = rng.normal(size=3000)
    tokens[:, 0], tokens[:, 2] = shared * 4.0, shared * 0.1 + rng.normal(size=3000) * 0.01
    _, weight = fit_projection(tokens.astype(np.float32), width=1)
    assert weight.shape == (8, 1)
    loading = np.abs(weight[:, 0]) * tokens.std(axis=0)  # on standardised channels
    assert set(np.argsort(loading)[-2:]) == {0, 2}  # the one shared direction leads


def test_projection_is_refused_on_tokens_that_do_not_vary():
    with pytest.raises(ValueError, match="do not vary"):
        fit_projection(np.ones((10, 4), dtype=np.float32), width=4)


def test_token_sample_keeps_whole_present_clips_and_is_seeded():
    feats = np.arange(5 * 2 * 3 * 4, dtype=np.float32).reshape(5, 2, 3, 4)
    num_clips = np.array([2, 1, 2, 1, 2])
    every = sample_train_tokens(feats, num_clips, max_tokens=1000)
    assert every.shape == (8 * 3, 4)  # padded clips (item 1 and 3, clip 1) are never read
    some = sample_train_tokens(feats, num_clips, max_tokens=6, seed=3)
    assert some.shape == (6, 4)
    np.testing.assert_array_equal(some, sample_train_tokens(feats, num_clips, max_tokens=6, seed=3))


# ----- one probe for every backbone ---------------------------------------------------------------------
@functools.cache
def _backbone_shapes() -> dict[str, tuple[int, list[int] | None]]:
    """(token width, token grid) of every kind of backbone the study compares: real builds where cheap,
    the released encoders' shapes otherwise (EchoPrime: 512-d pooled; PanEcho: 768-d, no grid)."""
    out = {}
    clip = (3, 16, 64, 64)
    for name, cfg in {
        "random_vit cpu_tiny": load_backbone_config("random_vit"),
        "random_vit cpu_small": {**load_backbone_config("random_vit"), "model": "cpu_small"},
        "pixel_stats": load_backbone_config("pixel_stats"),
    }.items():
        b = build_backbone(cfg)
        size = b.preprocess.img_size
        out[name] = (b.embed_dim, list(b.token_grid((3, clip[1], size, size))))
    out["echoprime-shaped"] = (512, None)
    out["panecho-shaped"] = (768, None)
    out["vitg-shaped"] = (1408, [8, 16, 16])
    return out


def _probe_cfg(name: str) -> dict:
    """conf/probe/<name>.yaml over the probes it builds on, as echojepa-probe composes it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_plain(compose("evaluate", overrides=[f"probe={name}"]).probe)


def _task_cfg(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "task" / f"{name}.yaml"), resolve=False)


@pytest.mark.parametrize("probe", ["attentive_cpu", "attentive"])
@pytest.mark.parametrize("task_name", ["lvef", "view", "rvsp"])
def test_every_backbone_gets_the_same_trainable_parameters_for_a_task(probe, task_name):
    cfg, task = _probe_cfg(probe), _task_cfg(task_name)
    out_dim = len(task["classes"]) if task["kind"] == "classification" else 1
    kind = "multiview" if task.get("multiview") else None
    views = list(task["multiview"]["views"]) if kind else []
    cfg["grid"] = {"lr": [1e-3], "wd": [0.1]}  # one head: the count is per head
    counts = {}
    for name, (dim, grid) in _backbone_shapes().items():
        with torch.device("meta"):  # shapes only: the reference width would allocate ~200 MB a head
            bank = build_probe_bank(bank_config(cfg, task, kind, views), dim, out_dim, grid)
        counts[name] = bank.trainable_parameters()
        assert bank.describe()["width"] == cfg["width"] and bank.describe()["in_dim"] == dim
    assert len(set(counts.values())) == 1, counts


def test_the_cpu_probe_relates_tokens_across_time_for_lvef_and_rvsp():
    cfg = _probe_cfg("attentive_cpu")
    for task_name in ("lvef", "rvsp"):
        task = _task_cfg(task_name)
        kind = "multiview" if task.get("multiview") else None
        head = bank_config(cfg, task, kind, ["A4C"])["head"]
        assert head["depth"] >= 2 and head["position"] == "sincos", task_name  # self-attention first


def test_a_saved_probe_carries_its_projection_and_reproduces_from_raw_tokens(tmp_path):
    torch.manual_seed(0)
    kwargs = {"embed_dim": 8, "out_dim": 1, "depth": 2, "num_heads": 2, "in_dim": 5}
    bank = ProbeBank(
        "attentive", {**kwargs, "token_grid": [2, 1, 1], "position": "sincos"}, [HeadSpec(1e-3, 0.1)]
    )
    tokens = torch.from_numpy(_correlated_tokens(40, 5)).view(4, 10, 5)  # 5 clips of 2 tokens per item
    shift, weight = projection_for(tokens.numpy()[:, None], np.ones(4, dtype=int), width=8)
    bank.set_projection(shift, weight)
    bank.trained_steps += 1
    task = ProbeTask("regression", target_mean=0.0, target_std=1.0)
    save_probe(tmp_path / "p.pt", bank, task, {"chosen_head": 0})
    loaded, _, _ = load_probe(tmp_path / "p.pt")
    torch.testing.assert_close(loaded.heads[0].input_map.weight, torch.from_numpy(weight))
    torch.testing.assert_close(loaded(tokens), bank(tokens))
    assert bank.trainable_parameters() == sum(p.numel() for p in bank.heads[0].parameters())
    assert all(not b.requires_grad for b in bank.heads[0].buffers())


# ----- the position code --------------------------------------------------------------------------------
def test_positions_are_in_clip_units_and_segments_continue_in_time():
    pos = cell_positions((2, 1, 2), segments=2)
    assert pos.shape == (8, 3)
    assert pos[:, 0].tolist() == [0.25, 0.25, 0.75, 0.75, 1.25, 1.25, 1.75, 1.75]
    assert pos[:2, 2].tolist() == [0.25, 0.75]
    # a place in the clip gets its code whatever the patching: t = 3/8 on 4 steps, t = 1/4 on 2
    periods = (8, 1 / 32)
    fine, coarse = spacetime_code(4, (4, 1, 1), 12, periods), spacetime_code(2, (2, 1, 1), 12, periods)
    torch.testing.assert_close(fine[1], _code_at(3 / 8, 12))
    torch.testing.assert_close(coarse[0], _code_at(1 / 4, 12))
    torch.testing.assert_close(spacetime_code(1, (1, 1, 1), 12, periods)[0], _code_at(0.5, 12))
    with pytest.raises(ValueError, match="whole clips"):
        spacetime_code(5, (2, 1, 1), 12, periods)


def _code_at(time: float, width: int) -> torch.Tensor:
    """The code of one token at (time, 0.5, 0.5) from its definition (geometric periods 8 .. 1/32)."""
    f = width // 6
    periods = 8.0 * (1 / 256) ** (np.arange(f) / max(f - 1, 1))
    out = []
    for p in (time, 0.5, 0.5):
        angle = 2 * np.pi * p / periods
        out += [np.sin(angle), np.cos(angle)]
    return torch.tensor(np.concatenate(out), dtype=torch.float32)


@pytest.mark.parametrize("depth", [1, 2])
def test_only_the_position_code_lets_an_attentive_probe_tell_time_order(depth):
    torch.manual_seed(0)
    kw = {
        "embed_dim": 12,
        "out_dim": 1,
        "depth": depth,
        "num_heads": 2,
        "token_grid": [6, 1, 1],
        "init_std": 0.5,
    }
    tokens = torch.randn(3, 6, 12)
    reversed_ = tokens.flip(1)  # the same set of tokens, played backwards
    blind = AttentiveProbe(**kw, position="none").eval()
    torch.testing.assert_close(blind(tokens), blind(reversed_), rtol=1e-5, atol=1e-6)  # a set
    torch.manual_seed(0)
    timed = AttentiveProbe(**kw, position="sincos").eval()
    assert (timed(tokens) - timed(reversed_)).abs().max() > 1e-3 * timed(tokens).abs().max()
