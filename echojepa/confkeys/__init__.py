"""Every config key has one reader: each config group is parsed at its boundary by a reader that refuses
keys it does not know, and this package holds the one refusal and the register of readers.

    schema    the schema kinds (a dataclass, Kwargs, DictOf, ListOf, FREE, Dispatch), refuse_unknown
              (the shared one-line refusal, ConfigKeyError), parse (a dataclass from a mapping) and
              unknown_keys (the key paths of a config that a schema does not read)
    registry  register / reads (which schema reads which group, and where) and readers (the whole
              register, every module of READER_MODULES imported)
"""

from echojepa.confkeys.registry import READER_MODULES, readers, reads, register
from echojepa.confkeys.schema import (
    FREE,
    ConfigKeyError,
    DictOf,
    Dispatch,
    Kwargs,
    ListOf,
    by_field,
    keys,
    parse,
    refuse_unknown,
    unknown_keys,
)

__all__ = [
    "FREE",
    "READER_MODULES",
    "ConfigKeyError",
    "DictOf",
    "Dispatch",
    "Kwargs",
    "ListOf",
    "by_field",
    "keys",
    "parse",
    "reads",
    "readers",
    "refuse_unknown",
    "register",
    "unknown_keys",
]
