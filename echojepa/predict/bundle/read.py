"""Reading a model bundle: ``load_bundle`` rebuilds the backbone, loads the bundled weights strictly,
checks that the rebuilt backbone has the recorded identity, and refuses any probe whose
``backbone_identity`` differs (a probe trained on other features predicts garbage, silently); each
task's chosen head comes back as a TaskHead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from echojepa.data.clips import ClipSpec
from echojepa.io.weights import read_weights_file
from echojepa.predict.bundle.format import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    REQUIRED_TASKS,
    BundleError,
    check_probe,
)
from echojepa.probe.backbone_base import Backbone, BackboneError
from echojepa.probe.backbones import build_backbone_from_state
from echojepa.probe.checkpoint import load_probe
from echojepa.probe.heads import StackableHead
from echojepa.probe.task import ProbeTask


@dataclass
class TaskHead:
    """One task's chosen probe head and how its clips are cut."""

    name: str
    head: StackableHead
    task: ProbeTask
    spec: ClipSpec
    chosen: int
    unit: str | None = None


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
        chosen = check_probe(name, f"{path} [{name}]", task, meta, len(bank), bank.kind, identity)
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
