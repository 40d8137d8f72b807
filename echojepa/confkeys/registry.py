"""The register of config readers: which schema reads which config group, and where it is parsed.

``register`` / ``reads`` record a group's reader (at import of the module that parses the group);
``readers`` imports every module of READER_MODULES and returns the whole register, which
tests/test_config_keys.py walks every YAML file under conf/ against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_READERS: dict[str, tuple[Any, str]] = {}

# Modules whose import registers a group's reader (readers() imports them all).
READER_MODULES = (
    "echojepa.paths",
    "echojepa.masks",
    "echojepa.pretrain.build",
    "echojepa.pretrain.data",
    "echojepa.pretrain.online_probe",
    "echojepa.pretrain.run",
    "echojepa.probe.config",
    "echojepa.data.degrade",
    "echojepa.synth.config",
    "echojepa.study_config",
)


def register(group: str, schema: Any, reader: str) -> None:
    """Record that ``reader`` (where the group is parsed) reads config group ``group`` with ``schema``."""
    if group in _READERS and _READERS[group][0] is not schema:
        raise ValueError(f"config group {group!r} already has a reader: {_READERS[group][1]}")
    _READERS[group] = (schema, reader)


def reads(group: str) -> Callable[[type], type]:
    """Class decorator: this dataclass is the boundary reader of config group ``group``."""

    def deco(cls: type) -> type:
        register(group, cls, f"{cls.__module__}.{cls.__qualname__}")
        return cls

    return deco


def readers() -> dict[str, tuple[Any, str]]:
    """group -> (schema, reader) for every registered group (importing the modules that register them)."""
    import importlib

    for module in READER_MODULES:
        importlib.import_module(module)
    return dict(_READERS)
