"""Config schemas and the one refusal: reading a config mapping against the schema of its group.

``refuse_unknown`` is the shared refusal (one line naming the key, the group and the accepted keys);
``parse`` builds a dataclass from a mapping with it, nested dataclass fields included; ``unknown_keys``
walks a composed config against a schema, which is what tests/test_config_keys.py does for every YAML
file under conf/.

A schema is one of:

* a dataclass: its fields; a field typed as a dataclass (or ``list[...]`` / ``dict[str, ...]`` of
  one) is walked into, any other field takes its value whole (a ``dict`` field is a mapping passed on
  as it is, e.g. a dataset reader's options); ``field(metadata=keys(schema))`` names another schema;
* ``Kwargs(callable)``: the callable's parameters (the group is passed straight to it, e.g. Lightning's
  Trainer or the VisionTransformer), less ``exclude`` (set by code, never by config);
* ``DictOf(schema)``: any names, each value read by ``schema``; ``ListOf(schema)`` likewise per item;
* ``FREE``: anything (a value passed on whole);
* ``Dispatch(fn)``: ``fn(raw)`` gives the schema (a group whose keys depend on its ``kind``).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class ConfigKeyError(ValueError):
    """A config mapping holds a key its reader does not read (or lacks one it needs)."""


def refuse_unknown(
    raw: Mapping[str, Any],
    accepted: Iterable[str],
    group: str,
    error: type[Exception] = ConfigKeyError,
) -> None:
    """Raise ``error`` naming the first keys of ``raw`` outside ``accepted``: a typo must not be ignored."""
    accepted = sorted(set(accepted))
    unknown = sorted(str(k) for k in set(raw) - set(accepted))
    if unknown:
        raise error(f"{group}: unknown keys {unknown}; accepted: {accepted}")


FREE = object()
"""Schema of a value passed on whole (any keys below it)."""


@dataclass(frozen=True)
class Kwargs:
    """The keyword parameters of ``fn`` (a class: its ``__init__``), less ``exclude``."""

    fn: Callable[..., Any]
    exclude: tuple[str, ...] = ()
    nested: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # parameter -> schema below it
    extra: tuple[str, ...] = ()  # keys the reader takes besides the parameters (converted first)

    def accepted(self) -> set[str]:
        params = inspect.signature(self.fn).parameters
        names = {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        return (names - {"self"} - set(self.exclude)) | set(self.extra)


@dataclass(frozen=True)
class DictOf:
    value: Any


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class Dispatch:
    """``fn(raw) -> schema``: e.g. the reader of a degradation preset is the class its ``kind`` names."""

    fn: Callable[[Mapping[str, Any]], Any]


def by_field(group: str, field: str, classes: Mapping[str, type]) -> Callable[[Any], type]:
    """The picker of a group whose ``field`` names its dataclass (``kind: tube`` -> TubeMask); an
    unknown or missing name is refused with the valid ones."""

    def pick(raw: Any) -> type:
        name = raw.get(field) if isinstance(raw, Mapping) else None
        if name not in classes:
            raise ConfigKeyError(f"{group}: unknown {field} {name!r}; valid: {', '.join(sorted(classes))}")
        return classes[name]

    return pick


def _is_class(schema: Any) -> bool:
    return isinstance(schema, type) and dataclasses.is_dataclass(schema)


def keys(schema: Any) -> dict[str, Any]:
    """``field(metadata=keys(schema))``: the field's value is read by ``schema``, not by its type."""
    return {"confkeys": schema}


def _hints(cls: type) -> dict[str, Any]:
    """Field types; one whose annotation names a type only imported for type checkers counts as FREE."""
    try:
        return typing.get_type_hints(cls)
    except NameError:
        import sys

        module = vars(sys.modules[cls.__module__])
        out = {}
        for f in dataclasses.fields(cls):
            try:
                out[f.name] = eval(f.type, module) if isinstance(f.type, str) else f.type  # noqa: S307
            except NameError:
                out[f.name] = Any
        return out


def _field_schemas(cls: type) -> dict[str, Any]:
    hints = _hints(cls)
    return {
        f.name: f.metadata["confkeys"] if "confkeys" in f.metadata else _from_type(hints.get(f.name))
        for f in dataclasses.fields(cls)
    }


def _from_type(tp: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _from_type(inner[0]) if len(inner) == 1 else FREE
    if _is_class(tp):
        return tp
    if origin in (list, tuple) and args and _is_class(args[0]):
        return ListOf(args[0])
    if origin in (dict, Mapping) and len(args) == 2 and _is_class(args[1]):
        return DictOf(args[1])
    return FREE


def unknown_keys(schema: Any, raw: Any, where: str) -> list[str]:
    """Dotted paths of the keys in ``raw`` that ``schema`` does not read."""
    if schema is FREE or raw is None:
        return []
    if isinstance(schema, Dispatch):
        return unknown_keys(schema.fn(raw), raw, where)
    if isinstance(schema, ListOf):
        items = raw if isinstance(raw, (list, tuple)) else []
        return [p for i, item in enumerate(items) for p in unknown_keys(schema.item, item, f"{where}[{i}]")]
    if not isinstance(raw, Mapping):
        return []
    if isinstance(schema, DictOf):
        return [p for k, v in raw.items() for p in unknown_keys(schema.value, v, f"{where}.{k}")]
    if isinstance(schema, Kwargs):
        below, accepted = dict(schema.nested), schema.accepted()
    elif _is_class(schema):
        below = _field_schemas(schema)
        accepted = set(below)
    else:
        raise TypeError(f"not a config schema: {schema!r}")
    out = []
    for k, v in raw.items():
        path = f"{where}.{k}" if where else str(k)
        if k not in accepted:
            out.append(path)
        else:
            out.extend(unknown_keys(below.get(k, FREE), v, path))
    return out


def parse(cls: type, raw: Mapping[str, Any], group: str, error: type[Exception] = ConfigKeyError) -> Any:
    """``cls`` (a dataclass) from ``raw``: unknown keys refused with the group named, a missing required
    key reported, and nested dataclass fields parsed the same way."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(raw, DictConfig):
        raw = OmegaConf.to_container(raw, resolve=True)  # type: ignore[assignment]
    if not isinstance(raw, Mapping):
        raise error(f"{group}: expected a mapping, got {type(raw).__name__}")
    schemas = _field_schemas(cls)
    refuse_unknown(raw, schemas, group, error)
    kwargs = {}
    for name, value in raw.items():
        schema = schemas[name]
        if _is_class(schema) and isinstance(value, Mapping):
            value = parse(schema, value, f"{group}.{name}", error)
        elif isinstance(schema, Kwargs) and isinstance(value, Mapping):
            refuse_unknown(value, schema.accepted() | set(schema.nested), f"{group}.{name}", error)
        elif isinstance(schema, DictOf) and _is_class(schema.value) and isinstance(value, Mapping):
            value = {
                k: v if v is None else parse(schema.value, v, f"{group}.{name}.{k}", error)
                for k, v in value.items()
            }
        elif isinstance(schema, ListOf) and _is_class(schema.item) and isinstance(value, (list, tuple)):
            value = [parse(schema.item, v, f"{group}.{name}[{i}]", error) for i, v in enumerate(value)]
        kwargs[name] = value
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise error(f"{group}: missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise error(f"{group}: {exc}") from None
