"""The model bundle: one weights-only file holding everything a prediction needs.

``make_bundle`` writes the backbone's config and weights (self-contained: the pretraining checkpoint is
not needed afterwards), its identity, and per task the probe checkpoint's content plus the clip
sampling the probe was trained with. ``load_bundle`` rebuilds the backbone, loads the bundled weights
strictly, checks that the rebuilt backbone has the recorded identity, and refuses any probe whose
``backbone_identity`` differs (a probe trained on other features predicts garbage, silently).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor

from echojepa.data.clips import ClipSpec
from echojepa.io.atomic import atomic_torch_save
from echojepa.io.weights import read_weights_file
from echojepa.paths import CONF_DIR
from echojepa.probe.backbone_base import Backbone, BackboneError
from echojepa.probe.backbones import build_backbone, build_backbone_from_state
from echojepa.probe.checkpoint import load_probe
from echojepa.probe.heads import StackableHead
from echojepa.probe.task import ProbeTask
from echojepa.probe.taskdata import clip_spec

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "REQUIRED_TASKS",
    "BundleError",
    "TaskHead",
    "check_required_tasks",
    "load_bundle",
    "make_bundle",
]

BUNDLE_FORMAT = "echojepa-predict-bundle"
BUNDLE_VERSION = 1
REQUIRED_TASKS = ("view", "lvef")
# Probes that pool several views of a study cannot score one file.
_SINGLE_FILE_PROBES = ("attentive", "linear", "mlp")
# Config keys holding paths on the machine that made the bundle; the bundle carries the weights instead.
_PATH_KEYS = ("checkpoint", "weights")


class BundleError(ValueError):
    """A model bundle that must not be used for prediction."""


@dataclass
class TaskHead:
    """One task's chosen probe head and how its clips are cut."""

    name: str
    head: StackableHead
    task: ProbeTask
    spec: ClipSpec
    chosen: int
    unit: str | None = None


def check_required_tasks(tasks: Mapping[str, Any], where: str) -> None:
    """BundleError naming ``where`` unless every task of REQUIRED_TASKS is present."""
    missing = [t for t in REQUIRED_TASKS if t not in tasks]
    if missing:
        raise BundleError(f"{where} needs probes for {list(REQUIRED_TASKS)}; missing {missing}")


# ----- writing --------------------------------------------------------------------------------------------
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


def _check_probe(
    name: str, where: str, task: ProbeTask, meta: Mapping[str, Any], n_heads: int, kind: str, identity: str
) -> int:
    """Refuses a probe that cannot serve ``name`` on this backbone; returns its chosen head."""
    if meta.get("backbone_identity") != identity:
        raise BundleError(
            f"{where}: probe for {name!r} was trained on backbone {meta.get('backbone')!r} "
            f"(identity {str(meta.get('backbone_identity'))[:12]}...), not on the bundled one "
            f"({identity[:12]}...): refusing"
        )
    if meta.get("task") not in (None, name):
        raise BundleError(f"{where}: probe was trained for task {meta.get('task')!r}, not {name!r}")
    if kind not in _SINGLE_FILE_PROBES:
        raise BundleError(f"{where}: a {kind!r} probe needs a whole study, not one file")
    if "chosen_head" not in meta:
        raise BundleError(f"{where}: probe meta has no chosen_head (the head picked on validation)")
    head = int(meta["chosen_head"])
    if not 0 <= head < n_heads:
        raise BundleError(f"{where}: chosen_head {head} is out of range for a bank of {n_heads}")
    if task.kind == "classification" and not task.class_names:
        raise BundleError(f"{where}: classification probe for {name!r} has no class names")
    return head


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
        _check_probe(name, str(probe_path), task, meta, len(bank), bank.kind, identity)
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


# ----- reading --------------------------------------------------------------------------------------------
def _rebuild_backbone(config: dict[str, Any], state: Mapping[str, Tensor], where: str) -> Backbone:
    """The bundled backbone's architecture, with the bundled weights loaded strictly."""
    try:
        return build_backbone_from_state(config, state, what="the bundled backbone")
    except BackboneError as exc:
        raise BundleError(f"{where}: {exc}") from exc


def _load_bundled_probe(content: Any, name: str, where: str) -> tuple[Any, ProbeTask, dict[str, Any]]:
    """load_probe's checks on bundled probe content (it reads files, so the content goes through one)."""
    with tempfile.TemporaryDirectory(prefix="echojepa-probe-") as tmp:
        path = Path(tmp) / f"{name}.pt"
        torch.save(content, path)
        try:
            return load_probe(path)
        except (ValueError, KeyError, TypeError) as exc:
            reason = " ".join(str(exc).replace(str(path), "it").split())  # not the temp file's name
            raise BundleError(f"{where}: bundled probe {name!r} is unusable: {reason}") from exc


def _one_line(exc: BaseException, path: Path) -> str:
    """An exception's message on one line, without a repeat of the bundle's path."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.removeprefix(f"{path}: ").removeprefix(f"{path} ")


def _read_bundle(path: Path) -> dict[str, Any]:
    """The bundle file's dict, loaded weights-only; one-line errors naming the file (never torch's advice
    to load untrusted files with ``weights_only=False``)."""
    if not path.exists():
        raise FileNotFoundError(f"model bundle {path} does not exist")
    ckpt = read_weights_file(path, "model bundle", error=BundleError)
    if not isinstance(ckpt, dict) or ckpt.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not an echojepa model bundle (make one with make_bundle)")
    if ckpt.get("version") != BUNDLE_VERSION:
        raise BundleError(f"{path}: bundle version {ckpt.get('version')}, this code reads {BUNDLE_VERSION}")
    return ckpt


def _parse_bundle(ckpt: Mapping[str, Any], path: Path) -> tuple[Backbone, dict[str, TaskHead]]:
    """The bundle's backbone (weights loaded, identity checked) and each task's chosen head."""
    bb, tasks = ckpt.get("backbone") or {}, ckpt.get("tasks") or {}
    if not isinstance(bb, Mapping) or not isinstance(tasks, Mapping):
        raise BundleError(f"{path}: bundle 'backbone' and 'tasks' must be dicts")
    absent = [k for k in ("config", "state_dict", "identity") if k not in bb]
    if absent:
        raise BundleError(f"{path}: bundle backbone entry lacks {absent}")
    if not isinstance(bb["config"], Mapping) or not isinstance(bb["state_dict"], Mapping):
        raise BundleError(f"{path}: bundle backbone 'config' and 'state_dict' must be dicts")
    if not bb["state_dict"] and bb["config"].get("kind") != "pixel_stats":
        raise BundleError(f"{path}: bundle holds no backbone weights")
    missing = [t for t in REQUIRED_TASKS if t not in tasks]
    if missing:
        raise BundleError(f"{path}: bundle has no probe for {missing}")
    backbone = _rebuild_backbone(dict(bb["config"]), bb["state_dict"], str(path))
    identity = backbone.identity()
    if identity != bb["identity"]:
        raise BundleError(f"{path}: rebuilt backbone's identity differs from the recorded one: refusing")
    heads = {}
    for name, entry in tasks.items():
        if (
            not isinstance(entry, Mapping)
            or "probe" not in entry
            or not isinstance(entry.get("clip"), Mapping)
        ):
            raise BundleError(f"{path}: task {name!r} lacks its probe or clip sampling")
        bank, task, meta = _load_bundled_probe(entry["probe"], name, str(path))
        chosen = _check_probe(name, f"{path} [{name}]", task, meta, len(bank), bank.kind, identity)
        try:
            spec = ClipSpec(**entry["clip"])
        except (TypeError, ValueError) as exc:
            raise BundleError(
                f"{path}: task {name!r} has unusable clip sampling ({_one_line(exc, path)})"
            ) from exc
        heads[name] = TaskHead(name, bank.export_head(chosen), task, spec, chosen, entry.get("unit"))
    return backbone, heads


def load_bundle(path: str | os.PathLike) -> tuple[Backbone, dict[str, TaskHead]]:
    """The bundled backbone (weights loaded strictly, identity checked) and each task's chosen head.

    Raises FileNotFoundError for a missing bundle and BundleError (one line naming the file and the
    reason) for anything else wrong with it."""
    path = Path(path)
    ckpt = _read_bundle(path)
    try:
        return _parse_bundle(ckpt, path)
    except BundleError:
        raise
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        # a hand-edited or foreign dict: whatever broke, it is this file's fault
        raise BundleError(f"{path}: malformed model bundle ({_one_line(exc, path)})") from exc
