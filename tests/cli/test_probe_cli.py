"""`echojepa-probe`: Hydra multirun sweeps, with the basic launcher and the submitit (SLURM) path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _probe(*args: str, cwd: Path, timeout: int = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "ECHOJEPA_RUNS": str(cwd / "runs"), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "echojepa.cli.probe", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _common(world: Path, tmp: Path) -> list[str]:
    return [
        "task=lvef",
        "backbone=pixel_stats",
        "probe=attentive_cpu",
        "probe.epochs=2",
        "probe.min_steps=0",
        "mlflow.enabled=false",
        "bootstrap.n_resamples=100",
        "num_workers=0",
        f"synth_root={world}",
        f"store={tmp / 'store'}",
        f"cache_dir={tmp / 'cache'}",
        "protocol.conditions=[internal]",
    ]


@pytest.mark.parametrize("launcher", ["basic", "local"])
def test_multirun_sweep_over_seeds_reuses_cached_features(synth_small, tmp_path, launcher):
    r = _probe("-m", f"hydra/launcher={launcher}", *_common(synth_small, tmp_path), "seed=0,1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads(p.read_text()) for p in (tmp_path / "store" / "records").rglob("*.json")]
    assert sorted(r["seed"] for r in recs if r["backbone"] == "pixel_stats") == [0, 1]
    entries = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 3  # train, val, test features: computed once, shared by both jobs


def test_a_missing_probe_checkpoint_is_one_line_and_exit_2(synth_small, tmp_path):
    absent = tmp_path / "absent.pt"
    r = _probe(
        *_common(synth_small, tmp_path), "protocol=robustness", f"probe_checkpoint={absent}", cwd=tmp_path
    )
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "weights_only" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"echojepa-probe: probe checkpoint {absent} does not exist: refusing to evaluate an untrained probe"
    )
    assert not (tmp_path / "store" / "records").exists()
