"""echojepa.tracking: one fresh SQLite MLflow store, several processes logging to it at once."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from echojepa.tracking import ensure_tracking_store, sqlite_path

# Each worker imports MLflow, waits for the "go" file (so all of them open the fresh store together),
# then does what `echojepa-probe` does: set the URI, the experiment, and log one run.
WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import mlflow
    uri, go, name, ensure = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
    Path(str(go) + "." + name).touch()
    while not go.exists():
        time.sleep(0.01)
    if ensure:
        from echojepa.tracking import ensure_tracking_store
        ensure_tracking_store(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("echojepa-probe")
    with mlflow.start_run(run_name=name):
        mlflow.log_metric("value", 1.0)
    """
)
N_PROCESSES = 3


def _run_together(tmp_path: Path, ensure: bool) -> tuple[str, list[subprocess.CompletedProcess]]:
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, uri, str(go), f"run{i}", "1" if ensure else "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(N_PROCESSES)
    ]
    ready = [Path(f"{go}.run{i}") for i in range(N_PROCESSES)]
    while not all(p.exists() for p in ready) and all(p.poll() is None for p in procs):
        time.sleep(0.02)
    go.touch()
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return uri, done


def test_concurrent_processes_on_a_fresh_store_all_log_their_run(tmp_path: Path) -> None:
    uri, done = _run_together(tmp_path, ensure=True)
    assert [p.returncode for p in done] == [0] * N_PROCESSES, [p.stderr[-2000:] for p in done]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("echojepa-probe")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"run{i}" for i in range(N_PROCESSES)]


def test_store_creation_is_idempotent_and_files_follow_the_umask(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "mlflow.db"
    old = os.umask(0o022)
    try:
        ensure_tracking_store(f"sqlite:///{db}")
        ensure_tracking_store(f"sqlite:///{db}")  # an existing store is only opened
    finally:
        os.umask(old)
    assert db.is_file()
    lock = db.with_name("mlflow.db.lock")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:////abs/runs/mlflow.db", Path("/abs/runs/mlflow.db")),
        ("sqlite:///runs/mlflow.db", Path("runs/mlflow.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("http://mlflow.internal:5000", None),
        ("postgresql://u@db/mlflow", None),
    ],
)
def test_only_local_sqlite_stores_are_created_here(uri: str, expected: Path | None) -> None:
    assert sqlite_path(uri) == expected


def test_a_tracking_server_uri_is_left_alone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ensure_tracking_store("http://127.0.0.1:9/never-contacted")
    assert list(tmp_path.iterdir()) == []
