"""Online probes: the closed-form math against numpy, and the callback inside a real (tiny) fit."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader

from echojepa.data.labelled_subset import LabelledClips
from echojepa.pretrain.build import build_module
from echojepa.pretrain.closed_form import (
    fit_and_score,
    pixel_time_pooled,
    pixel_tokens,
    ridge_path,
    time_pooled,
    trivial_score,
)
from echojepa.pretrain.online_probe import (
    OnlineProbe,
    OnlineProbeConfig,
    OnlineProbeInputError,
    OnlineTask,
    build_online_probe,
    history_csv,
)

from .helpers import tiny_cfg, trainer

# ----------------------------------------------------------------------------- the math


def _explicit_ridge(x: np.ndarray, y: np.ndarray, lam: float, x_new: np.ndarray) -> np.ndarray:
    """Ridge with an unpenalised intercept as one augmented least-squares problem (numpy lstsq)."""
    n, f = x.shape
    design = np.hstack([np.ones((n, 1)), x])
    penalty = np.hstack([np.zeros((f, 1)), np.sqrt(lam) * np.eye(f)])
    beta = np.linalg.lstsq(np.vstack([design, penalty]), np.concatenate([y, np.zeros(f)]), rcond=None)[0]
    return np.hstack([np.ones((len(x_new), 1)), x_new]) @ beta


def _lam(x: np.ndarray, alpha: float) -> float:
    xc = x - x.mean(axis=0)
    return alpha * np.trace(xc @ xc.T) / len(x)


@pytest.mark.parametrize("features", [5, 30])  # fewer and more features than samples
def test_leave_one_out_predictions_equal_refitting_without_each_sample(features):
    rng = np.random.default_rng(features)
    x, y = rng.normal(size=(12, features)), rng.normal(size=12)
    alphas = [0.01, 1.0]
    loo, _ = ridge_path(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(x[:2]), alphas)
    for a, alpha in enumerate(alphas):
        lam = _lam(x, alpha)  # the strength is set once, from the whole train subset
        expected = [
            _explicit_ridge(np.delete(x, i, 0), np.delete(y, i), lam, x[i : i + 1])[0] for i in range(12)
        ]
        np.testing.assert_allclose(loo[a, :, 0].numpy(), expected, rtol=1e-8, atol=1e-10)


def test_validation_predictions_equal_the_least_squares_fit():
    rng = np.random.default_rng(1)
    x, y, x_val = rng.normal(size=(10, 20)), rng.normal(size=(10, 3)), rng.normal(size=(4, 20))
    _, val = ridge_path(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(x_val), [0.1])
    lam = _lam(x, 0.1)
    for k in range(3):
        np.testing.assert_allclose(val[0, :, k].numpy(), _explicit_ridge(x, y[:, k], lam, x_val), rtol=1e-8)


def test_time_pooling_keeps_each_time_step_apart():
    grid = (3, 2, 2)
    # token value = its time step (t-major token order), so block t of the features must equal t
    tokens = torch.arange(3).repeat_interleave(4).float()[None, :, None].expand(2, 12, 5)
    feats = time_pooled(tokens, grid)
    assert feats.shape == (2, (3 + 1 + 4) * 5)  # per-time means, clip mean, 2 x 2 motion map
    for t in range(3):
        assert torch.all(feats[:, t * 5 : (t + 1) * 5] == t)
    assert torch.all(feats[:, 15:20] == 1.0)  # then the clip mean
    torch.testing.assert_close(feats[:, 20:], torch.full((2, 20), (2 / 3) ** 0.5))  # std of 0, 1, 2
    assert time_pooled(tokens, grid, motion_cells=1).shape == (2, (3 + 1 + 1) * 5)
    with pytest.raises(ValueError, match="grid"):
        time_pooled(tokens, (2, 2, 2))


def test_the_motion_map_reads_an_oscillation_amplitude_that_the_time_means_cannot():
    # EF-like target: how far each clip's tokens swing, at a random phase (the cycle's position at the
    # clip's first frame is arbitrary), so the mean of every time step carries no trace of it
    g = torch.Generator().manual_seed(0)
    n, t, d = 160, 8, 3
    amplitude = 1 + 4 * torch.rand(n, generator=g)
    phase = 2 * math.pi * torch.rand(n, generator=g)
    wave = torch.sin(phase[:, None] + 2 * math.pi * torch.arange(t) / t)  # [n, t]
    tokens = (amplitude[:, None] * wave)[:, :, None, None].expand(n, t, 4, d).reshape(n, t * 4, d)
    tokens = tokens + 0.1 * torch.randn(n, t * 4, d, generator=g)
    feats = time_pooled(tokens, (t, 2, 2))
    means_only = feats[:, : (t + 1) * d]
    alphas = [1e-3, 1e-1, 10.0]
    floor = trivial_score("regression", amplitude[:100], amplitude[100:])
    with_motion = fit_and_score(
        "regression", feats[:100], amplitude[:100], feats[100:], amplitude[100:], alphas
    )
    without = fit_and_score(
        "regression", means_only[:100], amplitude[:100], means_only[100:], amplitude[100:], alphas
    )
    assert with_motion.value < 0.2 * floor
    assert without.value > 0.8 * floor


def test_pixel_pooling_is_the_encoder_pooling_of_a_thumbnail_per_tubelet():
    video = torch.zeros(1, 3, 4, 8, 8)
    video[:, :, 2:] = 1.0  # dark first tubelet, bright second
    tokens, grid = pixel_tokens(video, tubelet=2, cells=2)
    assert tokens.shape == (1, 2, 4) and grid == (2, 1, 1)
    feats = pixel_time_pooled(video, tubelet=2, cells=2)
    torch.testing.assert_close(feats, time_pooled(tokens, grid))
    assert feats.shape == (1, (2 + 1 + 1) * 4)
    assert torch.all(feats[0, :4] == 0) and torch.all(feats[0, 4:8] == 1)
    assert torch.all(feats[0, 8:12] == 0.5) and torch.all(feats[0, 12:] == 0.5)  # clip mean, std over time


def test_a_probe_on_an_informative_feature_beats_chance_and_the_trivial_predictor():
    g = torch.Generator().manual_seed(0)
    alphas = [1e-3, 1e-1, 10.0]
    classes = torch.arange(96) % 4
    centres = torch.randn(4, 16, generator=g) * 2
    x = centres[classes] + torch.randn(96, 16, generator=g)
    acc = fit_and_score("classification", x[:64], classes[:64], x[64:], classes[64:], alphas, 4)
    assert acc.value > 0.7 > trivial_score("classification", classes[:64], classes[64:])
    ef = 55 + 10 * torch.randn(96, generator=g)
    x = torch.cat([ef[:, None] + torch.randn(96, 1, generator=g), torch.randn(96, 30, generator=g)], dim=1)
    mae = fit_and_score("regression", x[:64], ef[:64], x[64:], ef[64:], alphas)
    assert mae.value < 0.5 * trivial_score("regression", ef[:64], ef[64:])


def test_noise_features_stay_near_chance():
    g = torch.Generator().manual_seed(1)
    y = torch.arange(200) % 4
    x = torch.randn(200, 50, generator=g)
    acc = fit_and_score("classification", x[:100], y[:100], x[100:], y[100:], [1e-2, 1.0, 100.0], 4)
    assert acc.value < 0.45


# ----------------------------------------------------------------------------- the callback


class RecordingLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, dict]] = []

    @property
    def name(self) -> str:
        return "rec"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.calls.append((step, dict(metrics)))

    def online(self) -> dict[int, dict]:
        return {s: m for s, m in self.calls if any(k.startswith("online") for k in m)}


def _tasks(seed: int = 0) -> list[OnlineTask]:
    g = torch.Generator().manual_seed(seed)

    def clips(n: int, classes: bool) -> LabelledClips:
        video = torch.randint(0, 256, (n, 3, 8, 32, 32), generator=g, dtype=torch.uint8)
        target = torch.arange(n) % 3 if classes else 40 + 30 * torch.rand(n, generator=g)
        return LabelledClips(video, target, [f"clip{i}" for i in range(n)])

    return [
        OnlineTask("view", "classification", clips(9, True), clips(6, True), num_classes=3),
        OnlineTask("ef", "regression", clips(8, False), clips(5, False)),
    ]


def _clips(n: int = 6) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(
        [{"video": torch.randn(2, 3, 8, 32, 32, generator=g)} for _ in range(n)], batch_size=None
    )


def logged_trainer(max_steps: int, tmp_path: Path, probe: OnlineProbe, logger: Logger) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        logger=logger,
        log_every_n_steps=50,  # the probe's metrics must land whatever the logging interval
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=[probe],
    )


def test_the_callback_logs_every_metric_at_step_zero_every_n_steps_and_the_end(tmp_path):
    logger = RecordingLogger()
    probe = OnlineProbe(
        _tasks, every_n_steps=2, alphas=[0.1, 10.0], batch_size=4, csv_path=tmp_path / "online.csv"
    )
    logged_trainer(5, tmp_path, probe, logger).fit(build_module(tiny_cfg("jepa", tmp_path)), _clips())
    online = logger.online()
    assert sorted(online) == [0, 2, 4, 5]
    for metrics in online.values():
        assert {"online/view_acc", "online/ef_mae", "online/seconds", "online/cost_frac"} <= set(metrics)
        assert 0 <= metrics["online/view_acc"] <= 1 and metrics["online/ef_mae"] > 0
        assert 0 < metrics["online/cost_frac"] <= 1
    refs = {k for k in online[0] if k.startswith("online_ref/")}
    assert refs == {
        f"online_ref/{s}_{m}"
        for s in ("random_init", "pixel_stats", "trivial")
        for m in ("view_acc", "ef_mae")
    }
    assert not any(k.startswith("online_ref/") for k in online[2])  # references once
    rows = list(csv.DictReader((tmp_path / "online.csv").open()))
    assert [(int(r["step"]), r["source"]) for r in rows if r["source"] == "target"] == [
        (s, "target") for s in (0, 2, 4, 5)
    ]
    assert {r["source"] for r in rows} == {"target", "random_init", "pixel_stats", "trivial"}


def test_training_is_bit_identical_with_and_without_the_callback(tmp_path):
    cfg = tiny_cfg("jepa", tmp_path)
    torch.manual_seed(0)
    plain = build_module(cfg)
    torch.manual_seed(0)
    probed = build_module(cfg)
    torch.manual_seed(123)
    trainer(4, tmp_path / "a").fit(plain, _clips())
    after_plain = torch.rand(3)
    torch.manual_seed(123)
    probe = OnlineProbe(_tasks, every_n_steps=1, alphas=[1.0], batch_size=4)
    trainer(4, tmp_path / "b", [probe]).fit(probed, _clips())
    after_probed = torch.rand(3)
    assert len(probe.history) > 4  # it really ran, references included
    for (name, a), (_, b) in zip(plain.state_dict().items(), probed.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(after_plain, after_probed)  # the global RNG stream is where training left it
    assert all(m.training for m in probed.modules())  # train mode restored (Lightning's fit leaves it on)


class _Step0Trainer:
    """What _evaluate reads from a trainer, for a single-process step 0 without a fit."""

    world_size, global_rank, global_step, is_global_zero, loggers = 1, 0, 0, True, []


def test_a_run_from_scratch_is_its_own_random_init_reference_at_step_0_and_others_get_a_seeded_one(tmp_path):
    cfg = tiny_cfg("jepa", tmp_path)
    for from_scratch, passes in ((True, 1), (False, 2)):
        torch.manual_seed(1)  # not the probe's seed: its seeded reference is other weights
        module = build_module(cfg)
        probe = OnlineProbe(
            _tasks(), every_n_steps=1, alphas=[1.0], batch_size=4, seed=0, from_scratch=from_scratch
        )
        calls = []
        scores = probe._scores
        probe._scores = lambda *a, _s=scores, _c=calls: _c.append(1) or _s(*a)
        probe._evaluate(_Step0Trainer(), module)
        rows = {r["source"]: r for r in probe.history}
        assert len(calls) == passes  # one encoding pass serves both rows only for a run from scratch
        same = all(rows["random_init"][k] == rows["target"][k] for k in ("view_acc", "ef_mae"))
        assert same == from_scratch


def test_the_encoder_probed_is_the_jepa_target_and_the_mae_encoder(tmp_path):
    probe = OnlineProbe([], every_n_steps=1, alphas=[1.0])
    jepa, mae = build_module(tiny_cfg("jepa", tmp_path)), build_module(tiny_cfg("mae", tmp_path))
    assert probe.probed_encoder(jepa) == ("target", jepa.target_encoder)
    assert probe.probed_encoder(mae) == ("context", mae.encoder)
    assert OnlineProbe([], 1, [1.0], encoder="context").probed_encoder(jepa) == ("context", jepa.encoder)
    with pytest.raises(ValueError, match="no target encoder"):
        OnlineProbe([], 1, [1.0], encoder="target").probed_encoder(mae)


# ----------------------------------------------------------------------------- config boundary

TASK = {
    "kind": "regression",
    "format": "echonet_dynamic",
    "root": "x",
    "label": "ef",
    "train_size": 8,
    "val_size": 4,
}


def test_the_config_refuses_unknown_keys_naming_them():
    with pytest.raises(OnlineProbeInputError, match=r"online_probe: unknown key\(s\) \['every_n_step'\]"):
        OnlineProbeConfig.from_dict({"enabled": True, "every_n_step": 5, "tasks": {}})
    with pytest.raises(OnlineProbeInputError, match=r"online_probe.tasks.ef: unknown key\(s\) \['lable'\]"):
        OnlineProbeConfig.from_dict(
            {"enabled": True, "every_n_steps": 5, "tasks": {"ef": {**TASK, "lable": 1}}}
        )
    cfg = OnlineProbeConfig.from_dict(
        {"enabled": True, "every_n_steps": 5, "tasks": {"ef": TASK, "view": None}}
    )
    assert list(cfg.tasks) == ["ef"]  # a task set to null is dropped


def test_a_missing_dataset_root_is_one_line_before_training(tmp_path):
    cfg = tiny_cfg("jepa", tmp_path)
    cfg["online_probe"] = {
        "enabled": True,
        "every_n_steps": 5,
        "tasks": {"ef": {**TASK, "root": str(tmp_path / "nope")}},
    }
    with pytest.raises(OnlineProbeInputError) as err:
        build_online_probe(cfg, tmp_path)
    message = str(err.value)
    assert "\n" not in message and "nope" in message and "does not exist" in message
    assert "online_probe.enabled=false" in message
    cfg["online_probe"]["enabled"] = False
    assert build_online_probe(cfg, tmp_path) is None


def test_the_builder_reads_the_synthetic_world_and_the_callback_scores_it(synth_world, tmp_path):
    cfg = tiny_cfg("jepa", synth_world)
    classes = ["A4C", "A2C", "A3C", "A5C", "PLAX", "PSAX", "Subcostal"]
    cfg["online_probe"] = {
        "enabled": True,
        "every_n_steps": 5,
        "tasks": {
            "view": {"kind": "classification", "format": "mimic", "root": str(synth_world / "mimic_iv_echo"),
                     "label": "view", "classes": classes, "train_size": 3, "val_size": 3},
            "ef": {**TASK, "root": str(synth_world / "echonet_dynamic"), "train_size": 3, "val_size": 2},
        },
    }  # fmt: skip
    probe = build_online_probe(cfg, tmp_path)
    assert probe is not None and probe.online_seconds > 0  # index reading counts into the cost
    logger = RecordingLogger()
    logged_trainer(1, tmp_path, probe, logger).fit(build_module(cfg), _clips(1))
    view, ef = probe.tasks
    assert view.train.video.shape == (3, 3, 8, 32, 32) and view.train.video.dtype == torch.uint8
    assert view.num_classes == 7 and ef.val.target.dtype == torch.float32 and len(ef.val.target) == 2
    assert sorted(logger.online()) == [0, 1]
    assert (tmp_path / "online_probe.csv").exists()


def test_every_shipped_online_probe_config_parses():
    from omegaconf import OmegaConf

    from echojepa.paths import CONF_DIR

    raw = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "online_probe" / "synthetic.yaml"))
    cfg = OnlineProbeConfig.from_dict(raw)
    assert cfg.enabled and set(cfg.tasks) == {"view", "ef"}
    assert Path(CONF_DIR / "online_probe" / "real.yaml").exists()


# ----------------------------------------------------------------------------- the report figure


def _history(offset: float) -> list[dict]:
    rows = [
        {"step": s, "source": "target", "view_acc": 0.3 + offset + s / 1000, "ef_mae": 9 - s / 100}
        for s in (0, 100, 200)
    ]
    rows[0].update(seconds=0.5, cost_frac=0.04)
    rows += [
        {"step": 0, "source": "random_init", "view_acc": 0.5, "ef_mae": 8.0},
        {"step": 0, "source": "pixel_stats", "view_acc": 0.7 + offset, "ef_mae": 4.0},
        {"step": 0, "source": "trivial", "view_acc": 0.2, "ef_mae": 9.0},
    ]
    return rows


def test_the_report_draws_the_csv_the_callback_writes(tmp_path):
    from report.helpers import full_store  # tests/ is on sys.path (rootdir packages)
    from report.test_plots import assert_png

    from echojepa.report.build import build_report
    from echojepa.report.plots import read_online_probe_csv

    runs = {}
    for name, offset in (("jepa", 0.0), ("mae", 0.05)):
        runs[name] = tmp_path / f"{name}.csv"
        runs[name].write_text(history_csv(_history(offset)))
    curves, refs = read_online_probe_csv(runs["jepa"])
    assert curves["view_acc"][0].tolist() == [0, 100, 200] and set(curves) == {"view_acc", "ef_mae"}
    assert refs["random_init"] == {"view_acc": 0.5, "ef_mae": 8.0}
    report = build_report(full_store(tmp_path / "store"), tmp_path / "out", online_probes=runs)
    figure = [p for p in report["figures"] if p.name == "online_probes.png"]
    assert len(figure) == 1 and assert_png(figure[0])[0] > 0
    assert "Online probes during pretraining" in report["markdown"].read_text()


# ----------------------------------------------------------------------------- wiring into a run


def _compose_train(*overrides: str) -> dict:
    from hydra import compose, initialize_config_dir

    from echojepa.config import to_plain
    from echojepa.paths import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_plain(compose(config_name="train", overrides=list(overrides)))


def test_every_experiment_has_online_probes_on_and_real_data_points_at_the_probe_datasets(monkeypatch):
    monkeypatch.setenv("ECHONET_DYNAMIC_ROOT", "/data/echonet")
    for experiment in ("demo_jepa", "demo_mae", "full_jepa", "full_mae"):
        cfg = _compose_train(f"experiment={experiment}")
        assert cfg["online_probe"]["enabled"]
        world = Path(cfg["data"]["root"]).parent  # the synthetic world holds every layout side by side
        assert Path(os.path.normpath(cfg["online_probe"]["tasks"]["ef"]["root"])).parent == world
    for experiment in ("echojepa_l", "echomae_l", "echojepa_g"):
        cfg = _compose_train(f"experiment={experiment}")
        probe = OnlineProbeConfig.from_dict(cfg["online_probe"])
        assert probe.enabled and probe.tasks["view"].root == cfg["data"]["root"]
        assert probe.tasks["ef"].root == "/data/echonet" and probe.tasks["ef"].format == "echonet_dynamic"
    assert not _compose_train("online_probe.enabled=false")["online_probe"]["enabled"]


def test_a_pretraining_run_logs_the_probes_next_to_the_loss(synth_world, tmp_path):
    from echojepa.pretrain.run import pretrain

    cfg = _compose_train(
        "experiment=demo_jepa",
        f"data.root={synth_world / 'echonet_dynamic'}",
        "data.format=echonet_dynamic",
        "~data.reader.split_fractions",
        "data.synth=null",
        "data.num_workers=0",
        "data.batch_size=2",
        "data.clip.frames=8",
        "data.clip.frame_step=1",
        "model.img_size=32",
        "model.num_frames=8",
        "model.encoder.patch_size=8",
        "trainer.max_steps=3",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "logger=csv",
        "online_probe.every_n_steps=2",
        "online_probe.num_workers=0",
        "online_probe.tasks.view.train_size=3",
        "online_probe.tasks.ef.train_size=3",
    )
    pretrain(cfg, tmp_path)
    rows = list(csv.DictReader((tmp_path / "online_probe.csv").open()))
    assert [int(r["step"]) for r in rows if r["source"] == "target"] == [0, 2, 3]
    at0 = {r["source"]: (r["view_acc"], r["ef_mae"]) for r in rows if r["step"] == "0"}
    assert at0["random_init"] == at0["target"]  # a run from scratch is its own step-0 reference
    logged = list(csv.DictReader(next(tmp_path.glob("csv/*/metrics.csv")).open()))
    steps = {int(r["step"]) for r in logged if r.get("online/view_acc")}
    assert steps == {0, 2, 3} and any(r.get("train/loss_step") for r in logged)


def test_the_train_command_refuses_a_missing_probe_dataset_in_one_line(synth_world, tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "ECHOJEPA_RUNS": str(tmp_path / "runs")}
    args = [
        "experiment=demo_jepa",
        f"data.root={synth_world / 'echonet_dynamic'}",
        "data.format=echonet_dynamic",
        "~data.reader.split_fractions",
        "data.synth=null",
        "data.batch_size=2",
        f"online_probe.tasks.ef.root={tmp_path / 'no-echonet'}",
    ]
    command = [sys.executable, "-m", "echojepa.cli.train", *args]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.startswith("echojepa-train:")]
    assert len(lines) == 1 and "online_probe.tasks.ef" in lines[0] and "no-echonet" in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]  # no run folder left


def test_the_subsets_are_kept_beside_the_pretraining_clip_cache_so_a_second_run_decodes_nothing(
    synth_world, tmp_path, monkeypatch
):
    import echojepa.io as eio

    cfg = tiny_cfg("jepa", synth_world)
    cfg["data"]["cache"] = {"enabled": True, "dir": str(tmp_path / "clipcache")}
    cfg["online_probe"] = {
        "enabled": True,
        "every_n_steps": 5,
        "num_workers": 0,
        "tasks": {"ef": {**TASK, "root": str(synth_world / "echonet_dynamic"), "train_size": 3,
                         "val_size": 2}},
    }  # fmt: skip
    first = build_online_probe(cfg, tmp_path / "a")
    first.on_fit_start(None, build_module(cfg))
    # the train and the val subset, each one entry; no whole video stored for a single clip
    assert sorted(p.parent.name for p in (tmp_path / "clipcache").rglob("*.npy")) == ["subsets"] * 2

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached video was decoded again")

    monkeypatch.setattr(eio, "read_video", no_decoding)
    second = build_online_probe(cfg, tmp_path / "b")
    second.on_fit_start(None, build_module(cfg))
    for a, b in zip(first.tasks, second.tasks):
        assert torch.equal(a.train.video, b.train.video) and torch.equal(a.val.video, b.val.video)
