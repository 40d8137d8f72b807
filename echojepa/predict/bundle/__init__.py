"""The model bundle: one weights-only file holding everything a prediction needs.

format  BUNDLE_FORMAT / BUNDLE_VERSION, REQUIRED_TASKS, BundleError, and the checks each bundled
        probe passes on writing and on reading (check_probe, check_required_tasks)
write   make_bundle: backbone config, weights and identity, and per task the probe and its clip
        sampling, in one self-contained file
read    load_bundle: the rebuilt backbone (weights loaded strictly, identity checked) and each
        task's chosen head (TaskHead)
"""

from echojepa.predict.bundle.format import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    REQUIRED_TASKS,
    BundleError,
    check_required_tasks,
)
from echojepa.predict.bundle.read import TaskHead, load_bundle
from echojepa.predict.bundle.write import make_bundle

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "REQUIRED_TASKS",
    "BundleError",
    "TaskHead",
    "check_required_tasks",
    "load_bundle",
    "make_bundle",
]
