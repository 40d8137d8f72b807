"""The protocols end to end on cached features of the `small` synthetic world (pixel statistics: fast)."""

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR
from echojepa.probe.runner import run_probe
from echojepa.report.records import load_records


def _cfg(world: Path, tmp: Path, task: str, protocol: str, *extra: str, quick: bool = True) -> dict:
    """quick: 3 epochs, no step floor (shapes and plumbing); otherwise attentive_cpu's own training length."""
    length = ["probe.epochs=3", "probe.min_steps=0"] if quick else []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = to_plain(compose("evaluate", overrides=[
            f"task={task}", f"protocol={protocol}", "backbone=pixel_stats", "probe=attentive_cpu", *length,
            "mlflow.enabled=false", "bootstrap.n_resamples=200", "num_workers=0",
            f"store={tmp / 'store'}", f"cache_dir={tmp / 'cache'}", *extra,
        ]))  # fmt: skip
    for ds in cfg["task"]["datasets"].values():  # point every dataset at the session's small world
        ds["root"] = str(world / Path(ds["root"]).name)
    return cfg


def _conditions(paths: list[Path], backbone: str = "pixel_stats") -> list[str]:
    recs = [json.loads(p.read_text()) for p in paths]
    return sorted(r["condition"] for r in recs if r["backbone"] == backbone)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("probe-store")


def test_standard_lvef_reports_internal_and_external_with_trivial_rows(synth_small, store):
    written = run_probe(_cfg(synth_small, store, "lvef", "standard"), progress=False)
    assert _conditions(written) == ["external", "internal"]
    assert _conditions(written, "trivial") == ["external", "internal"]
    rec = json.loads(written[0].read_text())
    assert rec["split"] == "test" and rec["chosen"]["val_name"] == "mae"
    assert {"mae", "rmse", "r2"} <= set(rec["metrics"])
    for m in rec["metrics"].values():
        lo, hi = m["ci"]
        assert lo <= m["value"] <= hi
    assert Path(rec["probe_checkpoint"]).exists() is (rec["condition"] == "internal")


def test_robustness_covers_the_six_degradations_and_the_original(synth_small, store):
    written = run_probe(_cfg(synth_small, store, "lvef", "robustness"), progress=False)
    assert _conditions(written) == sorted(
        ["original", "depth_low", "depth_med", "depth_high", "shadow_low", "shadow_med", "shadow_high"]
    )
    maes = {
        json.loads(p.read_text())["condition"]: json.loads(p.read_text())["metrics"]["mae"]["value"]
        for p in written
        if "pixel_stats" in str(p)
    }
    assert len(set(np.round(list(maes.values()), 6))) > 1  # degradations change the inputs


def test_sample_efficiency_has_every_fraction_and_seed(synth_small, store):
    written = run_probe(
        _cfg(synth_small, store, "view", "sample_efficiency", "protocol.seeds=[0,1]"), progress=False
    )
    recs = [json.loads(p.read_text()) for p in written if "pixel_stats" in str(p)]
    got = sorted((r["condition"], r["seed"]) for r in recs)
    assert got == [
        ("fraction=0.01", 0),
        ("fraction=0.01", 1),
        ("fraction=0.1", 0),
        ("fraction=0.1", 1),
        ("fraction=1", 0),
    ]
    small = [r for r in recs if r["condition"] == "fraction=0.01"]
    assert all(r["extra"]["train_patients"] >= 1 for r in small)


def test_pediatric_transfer_zero_shot_and_fine_tuned(synth_small, store):
    written = run_probe(_cfg(synth_small, store, "lvef", "pediatric_transfer"), progress=False)
    assert _conditions(written) == ["fine_tuned", "zero_shot"]


def test_rvsp_single_multi_view_and_late_fusion(synth_small, store):
    written = run_probe(_cfg(synth_small, store, "rvsp", "standard"), progress=False)
    assert _conditions(written) == ["late_fusion", "multi_view", "single_view"]
    rec = next(
        json.loads(p.read_text()) for p in written if "multi_view" in p.name and "pixel_stats" in str(p)
    )
    assert rec["extra"]["views"] == ["A4C", "PSAX"] and rec["extra"]["clips_per_view"] == 2


def test_report_tables_from_these_records_have_the_seed_shapes(store):
    from echojepa.report.tables import build_tables

    tables = {t.key if hasattr(t, "key") else t.title: t for t in build_tables(load_records(store / "store"))}
    assert len(tables) == 6


def test_second_run_hits_the_feature_cache(synth_small, store, caplog):
    from echojepa.probe.features import FeatureCache

    cfg = _cfg(synth_small, store, "lvef", "standard")
    before = FeatureCache(cfg["cache_dir"]).size_bytes()
    run_probe(cfg, progress=False)
    assert FeatureCache(cfg["cache_dir"]).size_bytes() == before  # nothing new extracted


def test_saved_probe_is_refused_when_missing_or_from_another_backbone(synth_small, store):
    cfg = _cfg(synth_small, store, "lvef", "standard", f"probe_checkpoint={store / 'nope.pt'}")
    with pytest.raises(FileNotFoundError, match="untrained"):
        run_probe(cfg, progress=False)
    run_probe(_cfg(synth_small, store, "lvef", "standard"), progress=False)  # trains and saves the probe
    saved = sorted((store / "store" / "probes" / "lvef" / "pixel_stats").glob("standard-internal-*.pt"))[0]
    other = _cfg(synth_small, store, "lvef", "standard", f"probe_checkpoint={saved}", "backbone.grid=4")
    with pytest.raises(ValueError, match="another backbone"):
        run_probe(other, progress=False)
    ok = run_probe(_cfg(synth_small, store, "lvef", "standard", f"probe_checkpoint={saved}"), progress=False)
    assert ok


def test_all_clips_test_time_averages_every_window(synth_small, store):
    from echojepa.probe.taskdata import all_clip_groups

    assert all_clip_groups(np.array([3, 1]), 2) == [(0, [0, 1]), (0, [1, 2]), (1, [0, 0])]
    written = run_probe(
        _cfg(
            synth_small,
            store,
            "lvef",
            "standard",
            "protocol.test_time=all_clips",
            "protocol.conditions=[internal]",
        ),
        progress=False,
    )
    rec = next(json.loads(p.read_text()) for p in written if "pixel_stats" in str(p))
    assert rec["n"] == 16 and np.isfinite(rec["metrics"]["mae"]["value"])
