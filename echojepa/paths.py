"""Where the project's own files live.

The Hydra configs ship inside the package (``echojepa/conf``, package data), so a non-editable install
from a wheel carries them; the repository's top-level ``conf/`` is a link to the same folder for
people who browse the tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from echojepa.confkeys import register

# setuptools installs package data as plain files, so the resource folder is a real directory
CONF_DIR = Path(str(resources.files("echojepa") / "conf"))


@dataclass(frozen=True)
class PathsConfig:
    """conf/paths/default.yaml: where data, runs and the MLflow store live. Read through interpolation
    (``${paths.runs}`` etc. in train.yaml, evaluate.yaml and the groups) and by the apps' run folders."""

    data_root: str
    runs: str
    mlflow_db: str


register("paths", PathsConfig, f"{__name__}.PathsConfig (interpolated by the configs)")
