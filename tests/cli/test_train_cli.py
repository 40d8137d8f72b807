"""`echojepa-train`: composition of every preset, clear errors, and real runs through the entry point."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import echojepa.config  # noqa: F401  (registers the abspath resolver)
from echojepa.models.checkpoint import load_reference_checkpoint
from echojepa.paths import CONF_DIR


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def test_vitg_on_mimic_composes():
    cfg = _compose("model=vitg", "data=mimic")
    assert cfg.model.encoder.embed_dim == 1408 and cfg.model.encoder.depth == 40
    assert cfg.data.format == "mimic" and cfg.data.clip.target_fps == 8


@pytest.mark.parametrize(
    "experiment,model,objective,lr",
    [
        ("echojepa_l", "vitl", "jepa", 1.75e-4),
        ("echomae_l", "vitl", "mae", 1.75e-4),
        ("echojepa_g", "vitg", "jepa", 1.094e-4),
        ("demo_jepa", "cpu_tiny", "jepa", 1e-3),
        ("demo_mae", "cpu_tiny", "mae", 1e-3),
    ],
)
def test_every_experiment_composes_with_its_recipe(experiment, model, objective, lr):
    cfg = _compose(f"experiment={experiment}")
    assert (cfg.model.name, cfg.objective.name) == (model, objective)
    assert cfg.objective.schedule.lr == pytest.approx(lr)


def test_cooldown_is_its_own_phase():
    cfg = _compose("experiment=echojepa_l_cooldown", "init_from=/x/ckpt.pt")
    assert cfg.objective.schedule.kind == "cooldown"
    assert cfg.objective.schedule.total_steps == cfg.trainer.max_steps


def _run(*args: str, cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "ECHOJEPA_RUNS": str(cwd / "runs"), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "echojepa.cli.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_wrong_override_names_the_valid_choices(tmp_path):
    r = _run("model=vitx", cwd=tmp_path, timeout=60)
    assert r.returncode != 0
    assert "vitx" in r.stderr and "vitl" in r.stderr and "cpu_tiny" in r.stderr


def _tiny_overrides(world: Path) -> list[str]:
    return [
        "experiment=demo_jepa",
        f"data.root={world / 'echonet_dynamic'}",
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
        "checkpoint.every_n_train_steps=2",
    ]


def _only_run_dir(runs: Path) -> Path:
    summaries = list(runs.rglob("summary.json"))
    assert len(summaries) == 1, summaries
    return summaries[0].parent


def test_train_entry_point_runs_logs_to_mlflow_and_exports_reference_layout(synth_world, tmp_path):
    r = _run(*_tiny_overrides(synth_world), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = _only_run_dir(tmp_path / "runs")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["gflops_per_step"] > 0
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    ref = load_reference_checkpoint(run_dir / "reference.pt")
    assert {"encoder", "predictor", "target_encoder", "epoch"} <= set(ref)
    assert all(k.startswith("module.backbone.") for k in ref["target_encoder"])
    # the MLflow store got the run with its metrics
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("echojepa-pretrain")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and "train/loss_step" in runs[0].data.metrics


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_ddp_on_two_cpu_processes(synth_world, tmp_path):
    r = _run(*_tiny_overrides(synth_world), "trainer=ddp_cpu", "logger=csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((_only_run_dir(tmp_path / "runs") / "summary.json").read_text())
    assert summary["steps"] == 3


def test_slurm_path_with_the_submitit_local_launcher_runs_a_two_job_multirun(synth_world, tmp_path):
    r = _run(
        "-m",
        "hydra/launcher=local",
        *_tiny_overrides(synth_world),
        "logger=csv",
        "seed=0,1",
        "trainer.max_steps=2",
        cwd=tmp_path,
        timeout=400,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summaries = sorted((tmp_path / "runs").rglob("summary.json"))
    assert len(summaries) == 2
    assert all(json.loads(p.read_text())["steps"] == 2 for p in summaries)
