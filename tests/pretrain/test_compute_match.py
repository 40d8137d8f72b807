"""Each compute-matched EchoJEPA / EchoMAE pair trains on the same data, clips, batch, steps and LR.

Pairs: the named experiment pairs, composed as `echojepa-train experiment=...` composes them, and the
two pretraining runs of every study (conf/study/*.yaml, with the study's own overrides), as the
study pipeline composes them. A new study is checked without editing this file.
"""

import json
from typing import Any

import pytest
from hydra import compose, initialize_config_dir

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR
from echojepa.pipeline import Study

EXPERIMENT_PAIRS = [("demo_jepa", "demo_mae"), ("echojepa_l", "echomae_l"), ("full_jepa", "full_mae")]
STUDIES = sorted(p.stem for p in (CONF_DIR / "study").glob("*.yaml"))

# What compute matching holds fixed (README, Pretraining): the encoder and its input, the data and clip
# sampling, the global batch (per-device batch x devices x nodes x accumulation), the optimizer steps
# and the LR schedule.
MATCHED = [
    "model.encoder",
    "model.img_size",
    "model.num_frames",
    "data",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.accumulate_grad_batches",
    "trainer.max_steps",
    "objective.schedule",
    "seed",
]


def pick(cfg: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = cfg.get(part, "<unset>") if isinstance(cfg, dict) else "<unset>"
    return cfg


def mismatches(jepa: dict[str, Any], mae: dict[str, Any]) -> list[str]:
    return [key for key in MATCHED if pick(jepa, key) != pick(mae, key)]


def compose_experiment(name: str, *overrides: str) -> dict[str, Any]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_plain(compose("train", overrides=[f"experiment={name}", *overrides]))


@pytest.mark.parametrize(("jepa", "mae"), EXPERIMENT_PAIRS)
def test_experiment_pair_is_compute_matched(jepa, mae):
    a, b = compose_experiment(jepa), compose_experiment(mae)
    assert (a["objective"]["name"], b["objective"]["name"]) == ("jepa", "mae")
    assert mismatches(a, b) == []


@pytest.mark.parametrize("study", STUDIES)
def test_study_pretraining_pair_is_compute_matched(study, tmp_path):
    s = Study(study, tmp_path)
    a, b = s.pretrain_cfg("jepa"), s.pretrain_cfg("mae")
    assert (a["objective"]["name"], b["objective"]["name"]) == ("jepa", "mae")
    assert mismatches(a, b) == []


def test_a_pair_differing_in_batch_clips_or_schedule_is_caught():
    a = compose_experiment("demo_jepa")
    b = compose_experiment(
        "demo_mae", "data.batch_size=4", "data.clip.frame_step=2", "objective.schedule.warmup_steps=10"
    )
    assert mismatches(a, b) == ["data", "objective.schedule"]
    assert mismatches(a, compose_experiment("demo_mae", "trainer.max_steps=301")) == ["trainer.max_steps"]


def test_study_report_reads_each_objectives_total_flops_from_its_run_summary(tmp_path):
    s = Study("tiny", tmp_path)
    for objective, total in (("jepa", 30.5), ("mae", 12.0)):
        s.pretrain_dir(objective).mkdir(parents=True)
        (s.pretrain_dir(objective) / "summary.json").write_text(json.dumps({"gflops_total": total}))
    assert s.pretrain_gflops() == {"jepa": 30.5, "mae": 12.0}
