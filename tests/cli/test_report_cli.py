"""`echojepa-report --sweep`: an `echojepa-probe -m` sweep printed as a table from the MLflow store."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from echojepa.cli.report import main
from echojepa.paths import CONF_DIR


def _sweep(world: Path, tmp: Path, *grid: str) -> subprocess.CompletedProcess:
    """A multirun on the tiny world (pixel statistics, internal test set only), logging to tmp/runs."""
    env = {**os.environ, "ECHOJEPA_RUNS": str(tmp / "runs"), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the config's own URI (tmp/runs/mlflow.db) is the store
    args = [
        "task=lvef", "backbone=pixel_stats", "probe=attentive_cpu", "probe.min_steps=0",
        "bootstrap.n_resamples=20", "num_workers=0", "batch_size=4", "protocol.conditions=[internal]",
        f"synth_root={world}", f"store={tmp / 'store'}", f"cache_dir={tmp / 'cache'}",
    ]  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "echojepa.cli.probe", "-m", *args, *grid],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # a hang guard only: a loaded 2-core machine has taken 8 minutes
    )


def _table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def test_a_2x2_probe_sweep_prints_one_row_per_setting_with_selection_and_test_metric(
    synth_world, tmp_path, capsys, monkeypatch
):
    r = _sweep(synth_world, tmp_path, "probe.epochs=1,2", "probe.grid_preset=cpu,echojepa")
    assert r.returncode == 0, r.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "store" / "records").rglob("*.json")]
    records = [rec for rec in records if rec["backbone"] == "pixel_stats"]
    assert len(records) == 4  # every job wrote to the one results store

    monkeypatch.setenv("COLUMNS", "200")  # rich wraps narrower tables
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    assert main(["--sweep", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    rows = _table_rows(out)  # the header row is drawn with other box characters
    assert len(rows) == 4, out
    got = {}
    for _job, setting, backbone, _seed, selected_on, val, test, *_ in rows:
        assert backbone == "pixel_stats" and selected_on == "mae"
        got[setting] = (val, test)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cpu_lrs = compose("evaluate", ["probe=attentive_cpu", "probe.grid_preset=cpu"]).probe.grid.lr
    expected = {}
    for rec in records:  # the chosen head's epochs and lr name the setting each record came from
        grid = "cpu" if rec["chosen"]["lr"] in cpu_lrs else "echojepa"
        value = (f"{rec['chosen']['val_metric']:.4g}", f"{rec['metrics']['mae']['value']:.4g}")
        expected[f"probe.epochs={rec['chosen']['epochs']} probe.grid_preset={grid}"] = value
    assert got == expected


def test_a_missing_tracking_database_is_one_line_and_exit_2(tmp_path, capsys):
    db = tmp_path / "runs" / "mlflow.db"
    assert main(["--sweep", "--tracking-uri", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"echojepa-report: {db}: no MLflow tracking database there"]
    assert not db.exists()  # never an empty store made by looking


@pytest.mark.parametrize("argv", [[], ["--store", "results"], ["--sweep"]])
def test_without_a_store_and_out_or_a_sweep_with_its_store_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
