"""Checkpoints in the released V-JEPA 2 / EchoJEPA layout: safe loading, strict import, atomic export.

Released layout: a dict with top-level ``encoder``, ``predictor``, ``target_encoder`` (state dicts whose
keys carry ``module.backbone.``), ``epoch`` and optional extras (``opt``, ``scaler``, ``loss``,
``batch_size``, ``world_size``, ``lr``, ``itr``). Loading never unpickles code (``weights_only=True``)
and never loads a model partially unless asked to: the reference code's ``strict=False`` lets a wrong
checkpoint "load" and evaluate garbage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from echojepa.io.atomic import atomic_torch_save
from echojepa.io.weights import read_weights_file

log = logging.getLogger(__name__)

REFERENCE_PREFIX = "module.backbone."
MODEL_KEYS = ("encoder", "predictor", "target_encoder")
# Wrappers that prefix parameter names: DDP (module.), V-JEPA's MultiMaskWrapper (backbone.),
# torch.compile (_orig_mod.).
_WRAPPER_PREFIXES = ("module.", "backbone.", "_orig_mod.")


class CheckpointMismatchError(ValueError):
    """A state dict does not fit a module; lists every missing, unexpected and mis-shaped key."""


@dataclass
class LoadReport:
    """What a load did: keys loaded, and the keys that did not fit (empty lists after a strict load)."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, what: str = "", limit: int = 20) -> str:
        def show(keys: list[str]) -> str:
            more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
            return ", ".join(keys[:limit]) + more

        lines = [f"state dict does not fit {what or 'the module'}:"]
        if self.missing:
            lines.append(f"  missing keys ({len(self.missing)}): {show(self.missing)}")
        if self.unexpected:
            lines.append(f"  unexpected keys ({len(self.unexpected)}): {show(self.unexpected)}")
        if self.mismatched:
            shapes = [f"{k} checkpoint {list(c)} vs model {list(m)}" for k, c, m in self.mismatched]
            lines.append(f"  shape mismatches ({len(shapes)}): {show(shapes)}")
        return "\n".join(lines)


def _prefixed_state(model: nn.Module | Mapping[str, Tensor]) -> dict[str, Tensor]:
    state = model.state_dict() if isinstance(model, nn.Module) else model
    return {REFERENCE_PREFIX + k: v.detach().cpu() for k, v in strip_prefixes(state).items()}


def export_reference_checkpoint(
    path: str | os.PathLike[str],
    encoder: nn.Module | Mapping[str, Tensor],
    predictor: nn.Module | Mapping[str, Tensor] | None,
    target_encoder: nn.Module | Mapping[str, Tensor],
    *,
    epoch: int,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write the released layout (keys under ``module.backbone.``) atomically.

    ``predictor=None`` (e.g. an MAE run) leaves the ``predictor`` entry out, so importing a predictor from
    the file fails loudly instead of loading nothing.

    ``extra`` adds other top-level entries (``opt``, ``scaler``, ``loss``, ``lr``, ``itr`` ...); they must
    be weights-only loadable (tensors, numbers, strings, containers) and may not shadow model entries.
    """
    extra = dict(extra or {})
    clash = sorted(set(extra) & {*MODEL_KEYS, "epoch"})
    if clash:
        raise ValueError(f"extra entries {clash} would overwrite the model entries of {path}")
    ckpt: dict[str, Any] = {"encoder": _prefixed_state(encoder)}
    if predictor is not None:
        ckpt["predictor"] = _prefixed_state(predictor)
    ckpt |= {"target_encoder": _prefixed_state(target_encoder), "epoch": int(epoch), **extra}
    atomic_torch_save(ckpt, path)


def load_reference_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint on CPU with ``weights_only=True``; anything needing code to unpickle is refused."""
    return read_weights_file(path, "checkpoint")


def strip_prefixes(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop leading wrapper prefixes (``module.``, ``backbone.``, ``_orig_mod.``), however nested."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        name = key
        while name.startswith(_WRAPPER_PREFIXES):
            name = name.split(".", 1)[1]
        if name in out:
            raise ValueError(f"keys collide after stripping wrapper prefixes: {key!r} -> {name!r}")
        out[name] = value
    return out


def load_state_dict_strict(
    module: nn.Module,
    state_dict: Mapping[str, Tensor],
    *,
    allow_partial: bool = False,
    what: str = "",
    assign: bool = False,
) -> LoadReport:
    """Load ``state_dict`` only if every key and shape fits ``module``; otherwise raise
    CheckpointMismatchError listing all problems at once.

    ``allow_partial=True`` loads the fitting keys, logs a warning with the report and returns it (still
    refusing when nothing fits). ``assign=True`` adopts the given tensors (for modules on the meta device).
    """
    own = module.state_dict()
    report = LoadReport()
    fitting: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            fitting[key] = value
    report.missing = [k for k in own if k not in state_dict]
    report.loaded = list(fitting)
    if not report.ok:
        if not allow_partial:
            raise CheckpointMismatchError(report.describe(what))
        if not fitting:
            raise CheckpointMismatchError(
                report.describe(what) + "\n  (no key fits: refusing even a partial load)"
            )
        log.warning("partial load (allow_partial=True): %s", report.describe(what))
    module.load_state_dict(fitting, strict=report.ok, assign=assign)
    return report


def _model_entry(
    source: str | os.PathLike[str] | Mapping[str, Any], which: str
) -> tuple[Mapping[str, Tensor], str]:
    ckpt = source if isinstance(source, Mapping) else load_reference_checkpoint(source)
    name = "<in-memory checkpoint>" if isinstance(source, Mapping) else str(source)
    if which not in ckpt or not isinstance(ckpt[which], Mapping):
        raise ValueError(f"{name}: no model entry {which!r}; top-level keys: {sorted(ckpt)}")
    return ckpt[which], f"{which} of {name}"


def import_reference_encoder(
    path: str | os.PathLike[str] | Mapping[str, Any],
    encoder: nn.Module,
    which: str = "target_encoder",
    allow_partial: bool = False,
    *,
    assign: bool = False,
) -> LoadReport:
    """Load an encoder entry (default the EMA ``target_encoder``, used for frozen evaluation) into
    ``encoder``. ``path`` may also be an already-loaded checkpoint dict."""
    state, what = _model_entry(path, which)
    return load_state_dict_strict(
        encoder, strip_prefixes(state), allow_partial=allow_partial, what=what, assign=assign
    )


def import_reference_predictor(
    path: str | os.PathLike[str] | Mapping[str, Any],
    predictor: nn.Module,
    which: str = "predictor",
    allow_partial: bool = False,
    *,
    assign: bool = False,
) -> LoadReport:
    """Load the ``predictor`` entry of a released-layout checkpoint into ``predictor``."""
    state, what = _model_entry(path, which)
    return load_state_dict_strict(
        predictor, strip_prefixes(state), allow_partial=allow_partial, what=what, assign=assign
    )
