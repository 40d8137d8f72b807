"""Config helpers shared by the Hydra apps (the library itself never needs Hydra)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("abspath"):
        OmegaConf.register_new_resolver("abspath", lambda p: str(Path(p).expanduser().resolve()))


_register_resolvers()


def to_plain(cfg: DictConfig | dict | Any) -> Any:
    """Resolved plain containers (what the library and weights-only checkpoints accept)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def config_hash(cfg: Any) -> str:
    """A short stable hash of a (plain) config, for run identities and cache keys."""
    blob = json.dumps(to_plain(cfg), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
