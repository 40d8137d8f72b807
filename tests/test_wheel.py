"""A wheel built from the repository carries its configs: installed non-editable into a fresh virtual
environment outside the checkout, the commands work from another directory.

The fresh environment gets the wheel alone (`--no-deps`); its dependencies come from the development
environment's site-packages through a path line, because CI has no network for a second full install.
The echojepa package itself is then only the installed wheel: the repository is neither the working
directory nor on the path, and the development environment's editable hook is not loaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # built from a copy of the sources: setuptools builds in the tree, and a stale build/ folder there
    # could slip removed modules into the wheel
    src = tmp_path_factory.mktemp("src") / "echojepa"
    top = {
        ".git",
        ".venv",
        "build",
        "echojepa.egg-info",
        "runs",
        "data",
        "demo",
        "mlruns",
        "outputs",
        "multirun",
        "notebooks",
        "results",
    }  # run outputs and environments at the top level only

    def skip(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n == "__pycache__" or (Path(folder) == REPO and n in top)}

    shutil.copytree(REPO, src, symlinks=True, ignore=skip)
    out = tmp_path_factory.mktemp("wheel")
    # no build isolation: the build backend comes from this environment, not the network
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(src),
        ],
        cwd=out,
    )
    return next(out.glob("echojepa-*.whl"))


def test_the_wheel_holds_every_config_file(wheel: Path) -> None:
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("echojepa/conf/")}
    in_repo = {
        f"echojepa/{p.relative_to(REPO / 'echojepa').as_posix()}"
        for p in (REPO / "echojepa" / "conf").rglob("*.yaml")
    }
    assert in_repo and shipped == in_repo


def test_commands_from_the_installed_wheel_run_in_another_directory(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        cwd=tmp_path,
    )
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path
        ).stdout.strip()
    )
    (site / "zz_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["ECHOJEPA_RUNS"] = str(elsewhere / "runs")

    show = "import echojepa, echojepa.paths as p; print(echojepa.__file__, p.CONF_DIR)"
    where = _run([str(python), "-c", show], cwd=elsewhere, env=env).stdout
    assert str(site) in where and str(REPO) not in where  # the wheel's package and its configs

    bin_ = venv / "bin"
    train = _run([str(bin_ / "echojepa-train"), "--cfg", "job"], cwd=elsewhere, env=env).stdout
    assert "objective:" in train and "model:" in train
    probe = _run([str(bin_ / "echojepa-probe"), "--cfg", "job"], cwd=elsewhere, env=env).stdout
    assert "probe:" in probe and "task:" in probe
    _run(
        [str(bin_ / "echojepa-data"), "synth", "--preset", "tiny", "--out", str(elsewhere / "world")],
        cwd=elsewhere,
        env=env,
    )
    assert (elsewhere / "world" / "manifest.json").is_file()
    assert "usage" in _run([str(bin_ / "echojepa-report"), "--help"], cwd=elsewhere, env=env).stdout.lower()
