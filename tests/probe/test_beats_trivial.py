"""On the `small` synthetic world every task's probe beats its trivial baseline by a stated margin.

Pixel statistics through the shared probe (attentive_cpu with its own training length), world seed 0.
The margins rest on world seeds this test does not use (`scripts/trivial_margins.py --seeds 1 2 3`,
results/beats_trivial/margins.json, measured 2026-12-01): the probe's LVEF MAE was 18.7-31.2 % below the
train mean and its view accuracy 2.57-3.21x the majority class. The asserted margins are round numbers
under those minima that also hold on seed 0, the world the rest of the suite shares, whose own LVEF
margin (about 5 %) is the smallest seen. The multi-view RVSP test stays removed: its old margin rested
on test values, and re-derived on the untuned seeds (`scripts/trivial_margins.py --task rvsp --seeds 1 2 3`,
results/beats_trivial/rvsp_margins.json, 2026-12-02, the pooled RVSP probe) the margin over the train mean
was +2.1, +5.7 and -20.3 %: on seed 3 the probe loses, so no margin holds and none is asserted.
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
    assert probe < 0.98 * trivial, (probe, trivial)  # at least 2 % below the train mean


def test_view_probe_beats_the_majority_class(synth_small, tmp_path):
    written = run_probe(_cfg(synth_small, tmp_path, "view", "standard", quick=False), progress=False)
    probe, trivial = (_metric(written, b, "internal", "accuracy") for b in ("pixel_stats", "trivial"))
    assert probe > 2.0 * trivial, (probe, trivial)  # at least twice the majority class
