"""Every config key has exactly one reader (issue 11.2).

The walker composes each app (train.yaml over every option of every group in its defaults list,
evaluate.yaml likewise, every study) and checks each key path against the schema of the reader
registered for its group (echojepa.confkeys.readers(): boundary dataclasses, and for groups passed
straight to a callable, such as Lightning's Trainer or a head class, that callable's parameters). The
groups loaded outside Hydra (conf/synth presets, conf/degradation presets) are checked file by file.
Keys Hydra itself consumes (`defaults`, `hydra`, `# @package`) never reach a composed config. A YAML
file in a folder no app composes and no reader loads is reported too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from echojepa.confkeys import ConfigKeyError, readers, refuse_unknown, register, unknown_keys
from echojepa.paths import CONF_DIR

APPS = {"train": "train.yaml", "evaluate": "evaluate.yaml"}
LOADED_FILE_BY_FILE = ("synth", "degradation")  # presets read without Hydra, one file at a time
HYDRA_OWN = ("hydra",)  # hydra/launcher/*: Hydra's (submitit's) settings


def _plain(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)


def _app_groups(conf_dir: Path, app: str) -> list[str]:
    defaults = OmegaConf.to_container(OmegaConf.load(conf_dir / f"{app}.yaml"), resolve=False)["defaults"]
    return [next(iter(entry)) for entry in defaults if isinstance(entry, dict)]


def _options(conf_dir: Path, group: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def composed(conf_dir: Path) -> list[tuple[str, str, dict]]:
    """(label, reader group, config) for every app over every group option, and every study."""
    out = []
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        for app, root in APPS.items():
            out.append((app, root, _plain(compose(app))))
            for group in _app_groups(conf_dir, app):
                for option in _options(conf_dir, group):
                    override = f"{group}={option}"
                    out.append((f"{app} {override}", root, _plain(compose(app, overrides=[override]))))
    with initialize_config_dir(config_dir=str(conf_dir / "study"), version_base="1.3"):
        for study in _options(conf_dir, "study"):
            out.append((f"study {study}", "study", _plain(compose(study))))
    return out


def problems(conf_dir: Path) -> list[str]:
    """One line per key no reader reads, and per YAML file no app or reader loads."""
    schemas = {group: schema for group, (schema, _) in readers().items()}
    found = []
    for label, root, cfg in composed(conf_dir):
        found += [f"{label}: {path}" for path in unknown_keys(schemas[root], cfg, "")]
    for group in LOADED_FILE_BY_FILE:
        for path in sorted((conf_dir / group).glob("*.yaml")):
            raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
            found += [f"{group}/{path.name}: {p}" for p in unknown_keys(schemas[group], raw, group)]
    composed_groups = {g for app in APPS for g in _app_groups(conf_dir, app)} | {"study"}
    for path in sorted(conf_dir.rglob("*.yaml")):
        rel = path.relative_to(conf_dir)
        top = rel.parts[0] if len(rel.parts) > 1 else None
        if top is None:
            if rel.stem not in APPS:
                found.append(f"{rel}: a top-level config no app composes")
        elif top not in composed_groups | set(LOADED_FILE_BY_FILE) | set(HYDRA_OWN):
            found.append(f"{rel}: group {top!r} is composed by no app and loaded by no reader")
    return found


def test_every_key_under_conf_has_a_reader():
    assert problems(CONF_DIR) == []


def test_the_walker_reports_a_key_nothing_reads(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    with (conf / "probe" / "attentive.yaml").open("a") as f:
        f.write("lrs: [1.0e-3]\n")  # the stale key evaluate.yaml once showed
    with (conf / "objective" / "jepa.yaml").open("a") as f:
        f.write("masks: []\n")  # the copy of conf/mask that no reader read
    with (conf / "degradation" / "haze_low.yaml").open("a") as f:
        f.write("strenght: 0.1\n")
    (conf / "unused").mkdir()
    (conf / "unused" / "thing.yaml").write_text("a: 1\n")
    found = problems(conf)
    assert "evaluate: probe.lrs" in found
    assert "evaluate probe=attentive_cpu: probe.lrs" in found  # inherited by the probes built on it
    assert "train: objective.masks" in found
    assert "degradation/haze_low.yaml: degradation.strenght" in found
    assert any(p.startswith("unused/thing.yaml:") for p in found)


def test_each_group_has_exactly_one_reader():
    registered = readers()
    for group in ("model", "objective", "mask", "data", "trainer", "logger", "online_probe", "paths",
                  "checkpoint", "synth", "probe", "task", "protocol", "backbone", "degradation",
                  "study"):  # fmt: skip
        assert group in registered, group
    with pytest.raises(ValueError, match="already has a reader"):
        register("probe", object(), "a second reader")


def test_refusal_names_the_key_and_the_group():
    with pytest.raises(ConfigKeyError, match=r"logger: unknown keys \['experiment'\]; accepted: \["):
        refuse_unknown({"kind": "mlflow", "experiment": "x"}, ["kind", "experiment_name"], "logger")


def _compose(app: str, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose(app, overrides=list(overrides)), resolve=True)


def test_pretraining_refuses_a_misspelt_key_before_it_starts():
    from echojepa.pretrain.inputs import PretrainInputError
    from echojepa.pretrain.run import check_config_keys

    check_config_keys(_compose("train", "experiment=demo_jepa"))
    with pytest.raises(PretrainInputError, match=r"^trainer\.max_step: no such config key"):
        check_config_keys(_compose("train", "+trainer.max_step=3"))


def test_an_evaluation_config_with_a_key_nothing_reads_is_caught():
    from echojepa.probe.config import check_evaluate_keys

    assert check_evaluate_keys(_compose("evaluate", "probe=multiview", "task=rvsp")) == []
    assert check_evaluate_keys(_compose("evaluate", "+probe.head.view_dropout=0.1")) == [
        "probe.head.view_dropout"
    ]


def test_mask_group_takes_effect():
    cfg = _compose("train", "objective=mae")
    assert cfg["mask"] == {"kind": "tube", "ratio": 0.9}
    assert _compose("train")["mask"]["kind"] == "multiblock"
    assert _compose("train", "mask.groups.0.num_blocks=3")["mask"]["groups"][0]["num_blocks"] == 3


def test_a_wrong_group_option_gets_hydras_list_of_choices(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "echojepa.cli.train", "model=nope", "--cfg", "job"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0
    assert "Could not find 'model/nope'" in run.stderr
    assert "Available options" in run.stderr and "cpu_tiny" in run.stderr
