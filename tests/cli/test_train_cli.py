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


# ----- refused input: one stderr line naming the file or option, exit 2, no run folder ----------------


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def _bad_checkpoints(folder: Path) -> dict[str, Path]:
    """One checkpoint per way a resume can be wrong."""
    import pickle

    folder.mkdir()
    lightning_like = {"pytorch-lightning_version": "2.6.0", "state_dict": {"w": torch.zeros(4096)}}
    bad = {name: folder / f"{name}.ckpt" for name in ("missing", "empty", "truncated", "garbage")}
    bad["empty"].write_bytes(b"")
    torch.save(lightning_like, bad["truncated"])
    bad["truncated"].write_bytes(bad["truncated"].read_bytes()[:5000])  # a write cut short
    bad["garbage"].write_bytes(bytes(range(256)) * 8)
    bad["reference"] = folder / "reference.pt"  # the exported encoder layout, not a training checkpoint
    torch.save({"encoder": {"module.backbone.w": torch.zeros(2)}, "epoch": 1}, bad["reference"])
    bad["tensor"] = folder / "tensor.pt"
    torch.save(torch.zeros(3), bad["tensor"])
    bad["code"] = folder / "code.ckpt"
    with open(bad["code"], "wb") as f:
        torch.save({**lightning_like, "x": _Evil()}, f, pickle_module=pickle)
    bad["half_sharded"] = folder / "last.ckpt"  # an FSDP checkpoint folder whose write was killed
    bad["half_sharded"].mkdir()
    (bad["half_sharded"] / "__0_0.distcp").write_bytes(b"\0" * 64)
    return bad


def _refused(monkeypatch, capsys, tmp_path: Path, *overrides: str) -> str:
    """Run `echojepa-train` in this process; it must exit 2 with one stderr line and leave no run folder."""
    from echojepa.cli import train

    runs = tmp_path / "runs"
    monkeypatch.setenv("ECHOJEPA_RUNS", str(runs))
    # Hydra's `job_logging=disabled` would disable every logger in this process for later tests
    quiet = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
    monkeypatch.setattr(sys, "argv", ["echojepa-train", *overrides, *quiet])
    with pytest.raises(SystemExit) as exc:
        train.main()
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("echojepa-train: "), err
    assert "weights_only" not in err and "Traceback" not in err
    assert not [p for p in runs.rglob("*") if p.is_file()], "a refused run left files behind"
    return err


@pytest.mark.parametrize(
    "kind,reason",
    [
        ("missing", "no such file"),
        ("empty", "empty"),
        ("truncated", "truncated"),
        ("garbage", "not a readable torch file"),
        ("reference", "init_from="),
        ("tensor", "not a Lightning training checkpoint"),
        ("code", "refused"),
        ("half_sharded", "not a complete sharded checkpoint"),
    ],
)
def test_a_bad_resume_checkpoint_is_one_line_naming_it_before_any_data_or_model(
    synth_world, tmp_path, monkeypatch, capsys, kind, reason
):
    ckpt = _bad_checkpoints(tmp_path / "ckpts")[kind]
    monkeypatch.setattr("echojepa.pretrain.run.build_datamodule", lambda cfg: pytest.fail("indexed data"))
    err = _refused(monkeypatch, capsys, tmp_path, *_tiny_overrides(synth_world), f"ckpt_path={ckpt}")
    assert err.startswith(f"echojepa-train: {ckpt}: ") and reason in err


def test_a_sharded_checkpoint_without_fsdp_names_the_trainer_to_use(
    synth_world, tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "last.ckpt"
    folder.mkdir()
    torch.save({"pytorch-lightning_version": "2.6.0", "epoch": 0}, folder / "meta.pt")
    (folder / ".metadata").write_bytes(b"\0")
    err = _refused(monkeypatch, capsys, tmp_path, *_tiny_overrides(synth_world), f"ckpt_path={folder}")
    assert "trainer=fsdp" in err


@pytest.mark.parametrize("kind,reason", [("missing", "not found"), ("garbage", "not a readable torch file")])
def test_a_bad_init_from_file_is_one_line_naming_it_before_any_data_or_model(
    synth_world, tmp_path, monkeypatch, capsys, kind, reason
):
    init = tmp_path / f"{kind}.pt"
    if kind == "garbage":
        init.write_bytes(b"not weights")
    monkeypatch.setattr("echojepa.pretrain.run.build_datamodule", lambda cfg: pytest.fail("indexed data"))
    err = _refused(monkeypatch, capsys, tmp_path, *_tiny_overrides(synth_world), f"init_from={init}")
    assert err.startswith(f"echojepa-train: {init}: init_from") and reason in err


def test_a_non_integer_max_steps_is_one_line_naming_the_option(synth_world, tmp_path, monkeypatch, capsys):
    err = _refused(monkeypatch, capsys, tmp_path, *_tiny_overrides(synth_world), "trainer.max_steps=abc")
    assert "trainer.max_steps" in err and "'abc'" in err


def test_an_empty_train_split_is_one_line_naming_the_table_before_any_model(
    synth_world, tmp_path, monkeypatch, capsys
):
    videos = sorted((synth_world / "echonet_dynamic" / "Videos").iterdir())[:2]
    table = tmp_path / "index.csv"
    table.write_text("path,split\n" + "".join(f"{v},val\n" for v in videos))
    monkeypatch.setattr("echojepa.pretrain.run.build_module", lambda cfg: pytest.fail("built a model"))
    overrides = [o for o in _tiny_overrides(synth_world) if not o.lstrip("~").startswith("data.")]
    err = _refused(
        monkeypatch, capsys, tmp_path, *overrides, "data=csv", f"data.root={table}", "data.num_workers=0"
    )
    assert err.startswith(f"echojepa-train: {table}: ") and "no records in the training split" in err


def test_the_entry_point_exits_2_with_one_line_and_no_run_folder(tmp_path):
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    r = _run(f"ckpt_path={bad}", "logger=csv", cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [
        f"echojepa-train: {bad}: " + r.stderr.split(f"{bad}: ", 1)[1].strip()
    ]
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
