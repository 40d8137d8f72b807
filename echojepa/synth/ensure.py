"""Make sure a complete, current synthetic world is on disk: write it when missing, half-written or
written by another generator version or variation setting.

`generate` writes manifest.json last, so a world folder without it was interrupted mid-write; its
files are rewritten in place (same preset and seed -> the same bytes). A complete world whose manifest
names another generator, variation, preset or seed (say, one written before the acquisition
variation existed) is rewritten too, rather than trained on as if it were the configured one. A folder
holding anything `generate` does not write is never written into: it is somebody's own data.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from echojepa.synth.config import GENERATOR_VERSION, load_config
from echojepa.synth.writers import MANIFEST, generate

log = logging.getLogger(__name__)

# The top-level entries of a world (see echojepa.synth.writers); hidden names are atomic-write temp files.
WORLD_ENTRIES = frozenset(
    {"echonet_dynamic", "echonet_dynamic_siteB", "echonet_pediatric", "mimic_iv_echo", MANIFEST}
)


class NotASyntheticWorldError(FileExistsError):
    """The folder exists, has no manifest.json and holds files EchoSynth does not write."""


def stale_reason(root: str | Path, preset: str, seed: int) -> str | None:
    """Why the complete world under `root` is not the one `generate(root, preset, seed)` would write
    now (another generator version, variation, preset or seed); None when it is."""
    try:
        manifest = json.loads((Path(root) / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        return f"unreadable {MANIFEST} ({e})"
    cfg = load_config(preset)
    want = {"generator": GENERATOR_VERSION, "variation": cfg.variation, "preset": cfg.name, "seed": int(seed)}
    have = manifest if isinstance(manifest, dict) else {}
    diff = [f"{k} {have.get(k)!r} (now {v!r})" for k, v in want.items() if have.get(k) != v]
    return f"written with {', '.join(diff)}" if diff else None


def ensure_world(root: str | Path, preset: str, seed: int) -> bool:
    """Write the EchoSynth world (`preset`, `seed`) under `root` unless a complete, current one is there.

    Returns True when it was (re)written. Raises NotASyntheticWorldError (naming `root`) rather than
    write into a folder that is not a synthetic world.
    """
    root = Path(root)
    if (root / MANIFEST).is_file():
        reason = stale_reason(root, preset, seed)
        if reason is None:
            return False
        log.info("rewriting the synthetic echo world at %s: %s", root, reason)
        generate(root, preset, seed=seed)
        return True
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
