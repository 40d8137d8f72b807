"""The MLflow tracking store: created once, under a file lock, before any run logs to it.

MLflow creates a SQLite store lazily, on the first client that opens it, by running its alembic schema
migrations. Several processes opening one fresh store together (a Hydra multirun launcher, a SLURM
array of probe jobs) each start that migration and crash (``table _alembic_tmp_latest_metrics already
exists``). ``ensure_tracking_store`` serialises the creation with an exclusive ``flock`` on a lock
file beside the database; whoever comes second finds the finished store and only checks its schema.

Only local SQLite stores need this. A tracking server (``http(s)://``) or a database server does its
own locking; multi-node jobs should point at one (see the README): ``flock`` and SQLite's own locks are
not reliable on shared network filesystems.

The store also fixes where artifacts go and what runs are called, so runs compare:

- ``ensure_experiment`` creates an experiment with its artifacts beside a local database
  (``<db folder>/mlflow-artifacts/<experiment>/``), never in ``./mlruns`` of whatever directory a
  command ran in.
- ``record_metrics`` / ``record_params`` turn a probe results record into one run's metrics and params:
  the same metric means the same key in every run (``test/mae``, ``test/mae_ci_low``, ``val/mae``), and
  backbone, task, protocol, condition and seed are params, so MLflow's compare view lines runs up.
- ``hydra_job_tags`` names the Hydra multirun sweep and job a run belongs to (read by
  ``echojepa.report.sweep``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

__all__ = [
    "ARTIFACTS_DIR",
    "OVERRIDES_TAG",
    "RECORD_TAG",
    "SWEEP_JOB_TAG",
    "SWEEP_TAG",
    "artifact_location",
    "ensure_experiment",
    "ensure_tracking_store",
    "hydra_job_tags",
    "log_batch",
    "record_metrics",
    "record_params",
    "sqlite_path",
    "tracked_run",
]

log = logging.getLogger(__name__)

ARTIFACTS_DIR = "mlflow-artifacts"  # beside the database file: <runs>/mlflow.db, <runs>/mlflow-artifacts/
SWEEP_TAG = "echojepa.sweep"  # the multirun's sweep folder (absolute): one value per `-m` launch
SWEEP_JOB_TAG = "echojepa.sweep_job"  # the job number inside that sweep
OVERRIDES_TAG = "echojepa.overrides"  # the job's command-line overrides, a JSON list
RECORD_TAG = "echojepa.record"  # the results record a run was logged from
# A record's params: the factors runs are compared across (everything else is a metric or a tag).
RECORD_PARAMS = ("backbone", "backbone_kind", "task", "protocol", "condition", "dataset", "seed", "n")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for other stores and in-memory SQLite."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url  # MLflow's own dependency: parses every SQLAlchemy URI form

    database = make_url(uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # O_CREAT follows the umask (0o666 & ~umask), like any file a plain open() makes
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the process creating the store is done
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def ensure_tracking_store(uri: str) -> None:
    """Create (or migrate-check) the local SQLite MLflow store at ``uri`` once, whatever the concurrency.

    Call it before any MLflow client of this process logs. A no-op for servers and in-memory stores.
    The lock file (``<db>.lock``) is left in place: removing it would let a late process lock a new
    file while an early one still holds the old one.
    """
    db = sqlite_path(uri)
    if db is None:
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with _locked(_lock_path(db)):
        import mlflow

        # The client opens the store through MLflow's own code path: schema creation and migration,
        # the Default experiment, the same artifact-root defaults as a run logging without this call.
        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment of a local SQLite store keeps its artifacts: a folder beside the database,
    the same wherever the command runs. None for servers (they have their own artifact root)."""
    db = sqlite_path(uri)
    if db is None:
        return None
    return (db.resolve().parent / ARTIFACTS_DIR / re.sub(r"[^A-Za-z0-9._-]+", "_", experiment)).as_uri()


def ensure_experiment(uri: str, name: str) -> str:
    """The id of experiment ``name`` in the store at ``uri``, created (with its artifacts beside a local
    database) when missing. Safe when parallel jobs call it on a fresh store: a local store creates the
    experiment under the store's lock, a server answers the second creation with 'already exists'."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    ensure_tracking_store(uri)
    db = sqlite_path(uri)
    client = MlflowClient(tracking_uri=uri)
    with _locked(_lock_path(db)) if db is not None else nullcontext():
        exp = client.get_experiment_by_name(name)
        if exp is None:
            try:
                return client.create_experiment(name, artifact_location=artifact_location(uri, name))
            except MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp = client.get_experiment_by_name(name)
    wanted = artifact_location(uri, name)
    if wanted is not None and exp.artifact_location != wanted:
        # MLflow fixes an experiment's artifact root at creation: a store made before artifacts lived
        # beside it keeps its old root (say so rather than move files behind MLflow's back)
        log.warning("MLflow experiment %r keeps its artifacts in %s", name, exp.artifact_location)
    return exp.experiment_id


@contextmanager
def tracked_run(client: Any, experiment_id: str, name: str, tags: Mapping[str, str]) -> Iterator[str]:
    """A run of ``client`` (an MlflowClient; no process-wide active run) that ends FINISHED, or FAILED
    when the block raised; yields its id."""
    run = client.create_run(experiment_id, run_name=name, tags=dict(tags)).info.run_id
    try:
        yield run
    except BaseException:
        client.set_terminated(run, status="FAILED")
        raise
    client.set_terminated(run)


def log_batch(client: Any, run_id: str, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
    """Params (as strings) and metrics (at step 0) of one run, in one request."""
    from mlflow.entities import Metric, Param

    stamp = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in params.items()],
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def record_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """A results record as metrics under keys shared by every run: ``<split>/<metric>`` with
    ``_ci_low`` / ``_ci_high`` bounds, and ``val/<metric>`` for the validation metric the chosen head
    was selected on. Undefined values (NaN, a missing CI) are left out, not logged as NaN."""
    split = record.get("split") or "test"
    out: dict[str, float] = {}
    for name, entry in (record.get("metrics") or {}).items():
        if not isinstance(entry, Mapping):
            continue
        ci = entry.get("ci") or (None, None)
        for key, value in ((name, entry.get("value")), (f"{name}_ci_low", ci[0]), (f"{name}_ci_high", ci[1])):
            if _finite(value):
                out[f"{split}/{key}"] = float(value)
    chosen = record.get("chosen") or {}
    if chosen.get("val_name") and _finite(chosen.get("val_metric")):
        out[f"val/{chosen['val_name']}"] = float(chosen["val_metric"])
    return out


def record_params(record: Mapping[str, Any]) -> dict[str, str]:
    """A results record's comparison factors as params: backbone, task, protocol, condition, seed, ...,
    plus the chosen head (the validation metric it was selected on, its lr and wd)."""
    params = {k: str(record[k]) for k in RECORD_PARAMS if record.get(k) is not None}
    chosen = record.get("chosen") or {}
    for key, param in (("val_name", "selection_metric"), ("head", "chosen_head"), ("lr", "chosen_lr"),
                       ("wd", "chosen_wd")):  # fmt: skip
        if chosen.get(key) is not None:
            params[param] = str(chosen[key])
    if record.get("evaluation_of"):
        params["evaluation_of"] = str(record["evaluation_of"])
    return params


def hydra_job_tags() -> dict[str, str]:
    """Tags naming the Hydra job this process runs (its overrides; in a multirun also the sweep folder
    and job number); empty outside a Hydra app, so library callers need no Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:
        return {}
    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    tags = {OVERRIDES_TAG: json.dumps(list(hc.overrides.task))}
    if hc.mode == RunMode.MULTIRUN:
        # relative sweep folders are taken from the launch directory (a job may chdir into its own)
        tags[SWEEP_TAG] = str((Path(hc.runtime.cwd) / hc.sweep.dir).resolve())
        tags[SWEEP_JOB_TAG] = str(hc.job.num)
    return tags
