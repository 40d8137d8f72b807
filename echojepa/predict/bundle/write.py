"""Writing a model bundle: ``make_bundle`` puts the backbone's config and weights (self-contained: the
pretraining checkpoint is not needed afterwards), its identity, and per task the probe checkpoint's
content plus the clip sampling the probe was trained with into one weights-only file, refusing any probe
trained on another backbone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from echojepa.io.atomic import atomic_torch_save
from echojepa.paths import CONF_DIR
from echojepa.predict.bundle.format import BUNDLE_FORMAT, BUNDLE_VERSION, check_probe, check_required_tasks
from echojepa.probe.backbones import build_backbone
from echojepa.probe.checkpoint import load_probe
from echojepa.probe.taskdata import clip_spec

# Config keys holding paths on the machine that made the bundle; the bundle carries the weights instead.
_PATH_KEYS = ("checkpoint", "weights")


def _portable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The backbone config as plain JSON types (weights-only loadable), without weight-file paths."""
    plain = json.loads(json.dumps(dict(config), default=str))
    return {**plain, **{k: None for k in _PATH_KEYS if k in plain}}


def _task_config(name: str, task_cfgs: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    if task_cfgs is not None and name in task_cfgs:
        return dict(task_cfgs[name])
    path = CONF_DIR / "task" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"task {name!r}: no conf/task/{name}.yaml; pass its config in task_cfgs")
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert isinstance(cfg, dict)
    return cfg


def make_bundle(
    out: str | os.PathLike,
    backbone_cfg: Mapping[str, Any],
    probes: Mapping[str, str | os.PathLike],
    task_cfgs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write one self-contained, weights-only model bundle (atomic) and return its path.

    ``probes``: task name -> probe checkpoint (echojepa.probe.checkpoint.save_probe, with meta
    ``backbone_identity`` and ``chosen_head`` as the protocols write it); needs at least "view" and
    "lvef". Each task's clip sampling comes from conf/task/<name>.yaml unless ``task_cfgs`` gives it.
    Refuses probes trained on another backbone.
    """
    check_required_tasks(probes, "a model bundle")
    backbone = build_backbone(backbone_cfg)
    identity = backbone.identity()
    tasks: dict[str, Any] = {}
    for name, probe_path in probes.items():
        bank, task, meta = load_probe(probe_path)  # refuses missing, mismatched or untrained probes
        check_probe(name, str(probe_path), task, meta, len(bank), bank.kind, identity)
        tcfg = _task_config(name, task_cfgs)
        tasks[name] = {
            "probe": torch.load(probe_path, map_location="cpu", weights_only=True),
            "clip": asdict(clip_spec(tcfg, backbone, "center")),
            "unit": tcfg.get("unit"),
        }
    bundle = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "backbone": {
            "name": backbone.name,
            "kind": backbone.kind,
            "identity": identity,
            "config": _portable_config(backbone.config),
            "state_dict": {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items()},
        },
        "tasks": tasks,
    }
    out = Path(out)
    atomic_torch_save(bundle, out)
    return out
