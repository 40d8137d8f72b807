"""Probe checkpoints: save a trained bank with its task and meta, load it back strictly, and refuse a
saved probe that was not trained for the evaluation at hand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from echojepa.io.atomic import atomic_torch_save
from echojepa.models.checkpoint import CheckpointMismatchError, load_state_dict_strict
from echojepa.probe.bank import HeadSpec, ProbeBank
from echojepa.probe.errors import ProbeInputError
from echojepa.probe.task import ProbeTask

_PROBE_FORMAT = "echojepa-probe"
_PROBE_VERSION = 2  # 2: heads carry the fixed token projection and position code (one probe width)


def _check_plain(value: Any, where: str) -> None:
    """Only types ``torch.load(weights_only=True)`` reads back."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str | int):
                raise ValueError(f"probe meta key {where}.{k!r} must be str or int")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not (value is None or isinstance(value, str | int | float | bool)):
        raise ValueError(f"probe meta {where} is a {type(value).__name__}; use str/int/float/bool/list/dict")


def save_probe(
    path: str | Path, bank: ProbeBank, task: ProbeTask, meta: Mapping[str, Any] | None = None
) -> None:
    """Atomic; holds only tensors and plain types (loadable with ``torch.load(weights_only=True)``)."""
    if int(bank.trained_steps) == 0:
        raise ValueError(f"refusing to save an untrained probe bank to {path}")
    _check_plain(dict(meta or {}), "meta")
    atomic_torch_save(
        {
            "format": _PROBE_FORMAT,
            "version": _PROBE_VERSION,
            "arch": bank.arch(),
            "task": asdict(task),
            "meta": dict(meta or {}),
            "state_dict": {k: v.detach().cpu() for k, v in bank.state_dict().items()},
        },  # fmt: skip
        path,
    )


class ProbeCheckpointError(ProbeInputError):
    """A probe checkpoint that must not be used for evaluation (the message names the file and why)."""


def load_probe(path: str | Path) -> tuple[ProbeBank, ProbeTask, dict[str, Any]]:
    """Rebuild the bank from the saved architecture and load its weights strictly. Refuses a missing or
    unreadable file, keys that do not match the architecture, absent weights, a task whose output size
    is not the heads', and never-trained banks."""
    path = Path(path)
    if not path.is_file():
        raise ProbeCheckpointError(
            f"probe checkpoint {path} does not exist: refusing to evaluate an untrained probe"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, empty, not a torch file, or objects beyond plain types
        raise ProbeCheckpointError(
            f"{path}: unreadable probe checkpoint ({type(err).__name__}; empty, truncated or not a "
            "probe file written by save_probe)"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _PROBE_FORMAT:
        raise ProbeCheckpointError(f"{path} is not an echojepa probe checkpoint")
    if ckpt.get("version") != _PROBE_VERSION:
        raise ProbeCheckpointError(
            f"{path}: probe checkpoint version {ckpt.get('version')!r}, this code reads {_PROBE_VERSION} "
            "(probes are now built at one width for every backbone): re-train it"
        )
    state = ckpt.get("state_dict")
    if not state:
        raise ProbeCheckpointError(f"{path} holds no probe weights: refusing to evaluate an untrained probe")
    try:
        arch = ckpt["arch"]
        bank = ProbeBank(arch["kind"], arch["head_kwargs"], [HeadSpec(**s) for s in arch["specs"]])
        task = ProbeTask(**ckpt["task"])
    except (KeyError, TypeError, ValueError) as err:
        raise ProbeCheckpointError(f"{path}: invalid probe architecture or task ({err})") from None
    try:
        load_state_dict_strict(bank, state, what=f"probe checkpoint {path}")
    except CheckpointMismatchError as err:  # names the file and the keys: bad input, not a bug
        raise ProbeCheckpointError("; ".join(line.strip() for line in str(err).splitlines())) from None
    if int(bank.trained_steps) == 0:
        raise ProbeCheckpointError(f"{path} holds a probe bank that was never trained")
    if task.out_dim != bank.out_dim:
        raise ProbeCheckpointError(
            f"{path}: its task needs {task.out_dim} outputs but its heads give {bank.out_dim}"
        )
    bank.task = task
    bank.eval()
    return bank, task, dict(ckpt.get("meta") or {})


# What a saved probe's meta must hold to be reused for evaluation (``check_probe_fits``).
REUSE_META = ("backbone_identity", "task", "label", "seed", "train_dataset", "chosen_head", "chosen")


def probe_facts(bank: ProbeBank, task: ProbeTask, meta: Mapping[str, Any]) -> dict[str, Any]:
    """What ``check_probe_fits`` compares: the saved meta plus the facts the weights and task carry."""
    return {
        **meta,
        "task_kind": task.kind,
        "out_dim": bank.out_dim,
        "class_names": task.class_names,
        "probe_kind": bank.kind,
        "clips_per_view": bank.head_kwargs.get("clips_per_view"),
    }


def check_probe_fits(
    path: str | Path,
    bank: ProbeBank,
    task: ProbeTask,
    meta: Mapping[str, Any],
    expect: Mapping[str, Any],
) -> None:
    """Refuse a loaded probe that was not trained for this evaluation, listing every mismatch.

    ``expect`` maps a key of ``probe_facts`` (backbone_identity, task, label, task_kind, out_dim,
    class_names, probe_kind, views, ...) to the value this run needs, or to a set of allowed values.
    A probe saved without the meta that reuse needs (``REUSE_META``) is refused too."""
    missing = [k for k in REUSE_META if k not in meta]
    if missing:
        raise ProbeCheckpointError(
            f"{path}: saved without {', '.join(missing)} in its meta, so it cannot be checked against "
            "this evaluation: re-train it"
        )
    facts = probe_facts(bank, task, meta)
    wrong = []
    for key, want in expect.items():
        have = facts.get(key)
        if have in want if isinstance(want, set | frozenset) else have == want:
            continue
        if key == "backbone_identity":
            wrong.append(f"trained on another backbone ({meta.get('backbone')})")
        else:
            shown = sorted(want) if isinstance(want, set | frozenset) else want
            wrong.append(f"{key} {have!r} (this run needs {shown!r})")
    head = int(meta["chosen_head"])
    if not 0 <= head < len(bank):
        wrong.append(f"chosen_head {head} outside its bank of {len(bank)}")
    if wrong:
        raise ProbeCheckpointError(f"{path}: refusing to evaluate this saved probe: {'; '.join(wrong)}")
