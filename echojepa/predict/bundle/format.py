"""What a model bundle is and what makes a probe fit to be in one: the format tag and version, the tasks
every bundle needs, BundleError, and the checks that the writer and the reader both apply to each probe
(trained on this very backbone, for this task, able to score one file, with a valid chosen head).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from echojepa.probe.task import ProbeTask

BUNDLE_FORMAT = "echojepa-predict-bundle"
BUNDLE_VERSION = 1
REQUIRED_TASKS = ("view", "lvef")
# Probes that pool several views of a study cannot score one file.
_SINGLE_FILE_PROBES = ("attentive", "linear", "mlp")


class BundleError(ValueError):
    """A model bundle that must not be used for prediction."""


def check_required_tasks(tasks: Mapping[str, Any], where: str) -> None:
    """BundleError naming ``where`` unless every task of REQUIRED_TASKS is present."""
    missing = [t for t in REQUIRED_TASKS if t not in tasks]
    if missing:
        raise BundleError(f"{where} needs probes for {list(REQUIRED_TASKS)}; missing {missing}")


def check_probe(
    name: str, where: str, task: ProbeTask, meta: Mapping[str, Any], n_heads: int, kind: str, identity: str
) -> int:
    """Refuses a probe that cannot serve ``name`` on this backbone; returns its chosen head.

    ``where`` names the probe in the message, ``meta`` is its checkpoint meta, ``n_heads`` the size of its
    head bank, ``kind`` its probe kind and ``identity`` the backbone's; BundleError on any mismatch."""
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
