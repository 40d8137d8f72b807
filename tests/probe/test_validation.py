"""Validation-only probe runs (what settings are chosen from): scored on validation, with the curve
behind the figure, and the test split never extracted."""

from pathlib import Path

from hydra import compose, initialize_config_dir

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR
from echojepa.probe.feature_cache import FeatureCache
from echojepa.probe.runner import validate_probe


def test_validation_scores_carry_the_curve_and_never_extract_the_test_split(synth_small, tmp_path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = to_plain(compose("evaluate", overrides=[
            "task=lvef", "protocol=standard", "backbone=pixel_stats", "probe=attentive_cpu",
            "probe.epochs=3", "probe.min_steps=0", "probe.val_passes=null", "mlflow.enabled=false",
            "num_workers=0", f"store={tmp_path / 'store'}", f"cache_dir={tmp_path / 'cache'}",
        ]))  # fmt: skip
    for ds in cfg["task"]["datasets"].values():  # the session's small world
        ds["root"] = str(synth_small / Path(ds["root"]).name)
    (summary,) = validate_probe(cfg)
    assert summary["condition"] == "internal" and summary["metric"] == "mae"
    assert [h["epoch"] for h in summary["history"]] == [0, 1, 2]  # a validation pass every epoch
    assert summary["history"][-1]["val"] == summary["heads"]  # the head is chosen on the last pass
    assert summary["chosen"] == min(summary["heads"])
    splits = {e["key_parts"]["split"] for e in FeatureCache(cfg["cache_dir"]).entries()}
    assert splits == {"train", "val"}
