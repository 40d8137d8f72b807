"""Make sure a complete synthetic world is on disk: write it when missing or half-written.

`generate` writes manifest.json last, so a world folder without it was interrupted mid-write; its
files are rewritten in place (same preset and seed -> the same bytes). A folder holding anything
`generate` does not write is never written into: it is somebody's own data, not a half-written world.
"""

from __future__ import annotations

import logging
from pathlib import Path

from echojepa.synth.writers import MANIFEST, generate

log = logging.getLogger(__name__)

# The top-level entries of a world (see echojepa.synth.writers); hidden names are atomic-write temp files.
WORLD_ENTRIES = frozenset(
    {"echonet_dynamic", "echonet_dynamic_siteB", "echonet_pediatric", "mimic_iv_echo", MANIFEST}
)


class NotASyntheticWorldError(FileExistsError):
    """The folder exists, has no manifest.json and holds files EchoSynth does not write."""


def ensure_world(root: str | Path, preset: str, seed: int) -> bool:
    """Write the EchoSynth world (`preset`, `seed`) under `root` unless a complete one is there.

    Returns True when it was (re)written. Raises NotASyntheticWorldError (naming `root`) rather than
    write into a folder that is not a synthetic world.
    """
    root = Path(root)
    if (root / MANIFEST).is_file():
        return False
    if root.exists() and not root.is_dir():
        raise NotASyntheticWorldError(f"{root}: not a folder; cannot write a synthetic world there")
    if root.exists():
        foreign = sorted(p.name for p in root.iterdir() if p.name not in WORLD_ENTRIES and p.name[0] != ".")
        if foreign:
            raise NotASyntheticWorldError(
                f"{root}: not a synthetic world (no {MANIFEST}; holds {', '.join(foreign[:3])}); "
                "refusing to write one into it"
            )
        log.info("regenerating the half-written synthetic echo world at %s (no %s)", root, MANIFEST)
    else:
        log.info("writing the synthetic echo world (preset %s, seed %s) to %s", preset, seed, root)
    generate(root, preset, seed=seed)
    return True
