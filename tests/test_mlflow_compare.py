"""MLflow runs that compare: one key per metric in every run, artifacts beside the tracking database."""

from __future__ import annotations

import json
import math
from pathlib import Path
from urllib.parse import urlparse

import pytest
from hydra import compose, initialize_config_dir

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR
from echojepa.probe.runner import run_probe
from echojepa.tracking import RECORD_TAG, record_metrics, record_params


def _probe_cfg(world: Path, tmp: Path, backbone: str) -> dict:
    """The cheapest standard LVEF evaluation on the tiny world, logging to a store under tmp/runs."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_plain(compose("evaluate", overrides=[
            f"backbone={backbone}", "task=lvef", "probe=attentive_cpu", "probe.epochs=1", "probe.min_steps=0",
            "bootstrap.n_resamples=20", "num_workers=0", "batch_size=4", "protocol.conditions=[internal]",
            f"synth_root={world}", f"store={tmp / 'store'}", f"cache_dir={tmp / 'cache'}",
            f"paths.runs={tmp / 'runs'}",
        ]))  # fmt: skip


def test_two_backbones_runs_share_metric_keys_and_artifacts_sit_beside_the_database(
    synth_world, tmp_path, monkeypatch
):
    import mlflow

    launch = tmp_path / "launch"
    launch.mkdir()
    monkeypatch.chdir(launch)  # artifacts must not follow the working directory
    written = {}
    for backbone in ("pixel_stats", "random_vit"):
        cfg = _probe_cfg(synth_world, tmp_path, backbone)
        written[backbone] = [json.loads(p.read_text()) for p in run_probe(cfg, progress=False)]

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("echojepa-probe")
    runs = client.search_runs(
        [exp.experiment_id], filter_string="params.task = 'lvef' and params.condition = 'internal'"
    )
    by_backbone = {r.data.params["backbone"]: r for r in runs if r.data.params["backbone"] != "trivial"}
    assert sorted(by_backbone) == ["pixel_stats", "random_vit"]
    for backbone, run in by_backbone.items():
        rec = next(r for r in written[backbone] if r["backbone"] == backbone)
        assert run.data.metrics["test/mae"] == pytest.approx(rec["metrics"]["mae"]["value"])
        assert run.data.metrics["val/mae"] == pytest.approx(rec["chosen"]["val_metric"])
        assert run.data.params["selection_metric"] == "mae" and run.data.params["protocol"] == "standard"
        artifacts = Path(urlparse(run.info.artifact_uri).path)
        assert artifacts.is_relative_to((tmp_path / "runs" / "mlflow-artifacts").resolve())
        logged = sorted(f"{p.parent.name}/{p.name}" for p in artifacts.rglob("*") if p.is_file())
        stem = Path(run.data.tags[RECORD_TAG]).stem
        assert logged == [f"predictions/{stem}.predictions.csv", f"records/{stem}.json"]
    assert not (launch / "mlruns").exists() and list(launch.iterdir()) == []


def test_record_metrics_use_split_keys_with_ci_bounds_and_leave_out_undefined_values():
    record = {
        "split": "test",
        "metrics": {
            "mae": {"value": 4.0, "ci": [3.0, 5.0]},
            "auroc_ef_below_50": {"value": math.nan, "ci": [None, None]},
        },
        "chosen": {"val_name": "mae", "val_metric": 3.5, "head": 2, "lr": 1e-3, "wd": 0.1},
    }
    assert record_metrics(record) == {
        "test/mae": 4.0, "test/mae_ci_low": 3.0, "test/mae_ci_high": 5.0, "val/mae": 3.5,
    }  # fmt: skip
    params = record_params({**record, "backbone": "b", "task": "lvef", "condition": "depth_high", "seed": 1})
    assert params == {
        "backbone": "b", "task": "lvef", "condition": "depth_high", "seed": "1",
        "selection_metric": "mae", "chosen_head": "2", "chosen_lr": "0.001", "chosen_wd": "0.1",
    }  # fmt: skip


def test_pretraining_runs_keep_artifacts_beside_the_database_not_in_the_first_run_folder(tmp_path):
    import mlflow

    from echojepa.pretrain.build import build_logger

    db = tmp_path / "runs" / "mlflow.db"
    cfg = {
        "logger": {
            "kind": "mlflow",
            "experiment_name": "echojepa-pretrain",
            "tracking_uri": f"sqlite:///{db}",
        }
    }
    for run in ("first", "second"):
        build_logger(cfg, tmp_path / "runs" / "train" / run, run)
    exp = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").get_experiment_by_name("echojepa-pretrain")
    assert exp.artifact_location == (db.parent / "mlflow-artifacts" / "echojepa-pretrain").resolve().as_uri()
