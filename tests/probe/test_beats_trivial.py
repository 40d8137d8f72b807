"""On the `small` synthetic world every task's probe beats its trivial baseline.

Pixel statistics through the shared probe (attentive_cpu with its own training length), world seed 0.
Only the claim itself is asserted (better than the train mean / majority class, AUROC above chance):
the earlier margins were set just under measured test values on the old world and probe, and are
withdrawn until they are re-derived on world seeds the test does not use (issue 9). The multi-view RVSP
test is removed for the same reason: its margin rested on old test values, and on the realistic world
its result has not been measured yet.
"""

import json
from pathlib import Path

from echojepa.probe.runner import run_probe

from .test_protocols import _cfg


def _metric(paths: list[Path], backbone: str, condition: str, name: str) -> float:
    for p in paths:
        r = json.loads(p.read_text())
        if r["backbone"] == backbone and r["condition"] == condition:
            return r["metrics"][name]["value"]
    raise AssertionError(f"no {backbone}/{condition} record")


def test_lvef_probe_beats_the_train_mean(synth_small, tmp_path):
    written = run_probe(_cfg(synth_small, tmp_path, "lvef", "standard", quick=False), progress=False)
    probe, trivial = (_metric(written, b, "internal", "mae") for b in ("pixel_stats", "trivial"))
    assert probe < trivial, (probe, trivial)


def test_view_probe_beats_the_majority_class(synth_small, tmp_path):
    written = run_probe(_cfg(synth_small, tmp_path, "view", "standard", quick=False), progress=False)
    probe, trivial = (_metric(written, b, "internal", "accuracy") for b in ("pixel_stats", "trivial"))
    assert probe > trivial, (probe, trivial)
