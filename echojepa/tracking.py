"""The MLflow tracking store: created once, under a file lock, before any run logs to it.

MLflow creates a SQLite store lazily, on the first client that opens it, by running its alembic schema
migrations. Several processes opening one fresh store together (a Hydra multirun launcher, a SLURM
array of probe jobs) each start that migration and crash (``table _alembic_tmp_latest_metrics already
exists``). ``ensure_tracking_store`` serialises the creation with an exclusive ``flock`` on a lock
file beside the database; whoever comes second finds the finished store and only checks its schema.

Only local SQLite stores need this. A tracking server (``http(s)://``) or a database server does its
own locking; multi-node jobs should point at one (see the README): ``flock`` and SQLite's own locks are
not reliable on shared network filesystems.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ensure_tracking_store", "sqlite_path"]


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
    with _locked(db.with_name(db.name + ".lock")):
        import mlflow

        # The client opens the store through MLflow's own code path: schema creation and migration,
        # the Default experiment, the same artifact-root defaults as a run logging without this call.
        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
