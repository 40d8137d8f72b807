"""The protocols end to end on cached features of the `small` synthetic world (pixel statistics: fast)."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR
from echojepa.probe import protocols, training
from echojepa.probe.bank import HeadSpec, ProbeBank
from echojepa.probe.checkpoint import ProbeCheckpointError, save_probe
from echojepa.probe.errors import ProbeInputError
from echojepa.probe.feature_cache import FeatureCache, aug_view_for_epoch
from echojepa.probe.runner import run_probe
from echojepa.probe.task import ProbeTask
from echojepa.report.records import load_records


def _refuse_training(monkeypatch, why: str) -> None:
    """Fail the test if any protocol trains a probe bank."""
    monkeypatch.setattr(training, "train_probe_bank", lambda *a, **k: pytest.fail(why))


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
    # what the backbone was given, for the report's setup table: the task's 2 segments per video
    probe = rec["chosen"]["probe"]
    assert probe["input"]["clips"] == 2 and probe["input"]["frame_step"] == 2
    assert probe["input"]["tokens_per_clip"] == math.prod(probe["token_grid"])


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


def test_sample_efficiency_chooses_the_head_on_validation_patients_in_the_same_proportion(
    synth_small, store, monkeypatch
):
    seen = []

    def spy_fit(ctx, train_views, val_inputs, train_target, *, seed, **kw):
        def patients(inputs):
            return {inputs.data.records[i].patient for i, _ in inputs.groups}

        seen.append((patients(train_views[0]), patients(val_inputs), patients_of(val_inputs.data), seed))
        return None, None, None

    def patients_of(split):
        return {r.patient for r in split.records}

    monkeypatch.setattr(protocols, "train_task_probe", spy_fit)
    monkeypatch.setattr(protocols, "evaluate_probe", lambda *a, **k: None)
    cfg = _cfg(synth_small, store, "view", "sample_efficiency", "protocol.fractions=[0.1,1.0]")
    run_probe(cfg, progress=False)
    assert len(seen) == 4  # 3 seeds at 10 %, one at 100 %
    for train, val, all_val, seed in seen:
        assert val <= all_val
        share = len(val) / len(all_val)
        if len(train) == len(seen[-1][0]):  # 100 % of the training patients
            assert val == all_val
        else:  # never more validation labels than the training fraction allows (one patient at least)
            assert len(val) == max(1, round(0.1 * len(all_val))), (seed, share)
    assert len({frozenset(v) for _, v, _, _ in seen[:3]}) > 1  # each seed draws its own patients


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
    from echojepa.probe.feature_cache import FeatureCache

    cfg = _cfg(synth_small, store, "lvef", "standard")
    before = FeatureCache(cfg["cache_dir"]).size_bytes()
    run_probe(cfg, progress=False)
    assert FeatureCache(cfg["cache_dir"]).size_bytes() == before  # nothing new extracted


def _saved_lvef_probe(world: Path, store: Path) -> Path:
    """The standard LVEF probe of the module's store (trained here when an earlier test did not)."""
    folder = store / "store" / "probes" / "lvef" / "pixel_stats"
    if not (folder / "standard-internal-seed0.pt").is_file():
        run_probe(_cfg(world, store, "lvef", "standard"), progress=False)
    return folder / "standard-internal-seed0.pt"


def _relabelled(saved: Path, out: Path, **meta) -> Path:
    """A copy of a saved probe whose meta claims another training (what a probe for another task holds)."""
    ckpt = torch.load(saved, weights_only=True)
    ckpt["meta"] = {**ckpt["meta"], **meta}
    torch.save(ckpt, out)
    return out


def test_saved_probe_is_refused_when_missing_or_from_another_backbone(synth_small, store):
    cfg = _cfg(synth_small, store, "lvef", "standard", f"probe_checkpoint={store / 'nope.pt'}")
    with pytest.raises(ProbeCheckpointError, match="does not exist"):
        run_probe(cfg, progress=False)
    saved = _saved_lvef_probe(synth_small, store)
    other = _cfg(synth_small, store, "lvef", "standard", f"probe_checkpoint={saved}", "backbone.grid=2")
    with pytest.raises(ProbeCheckpointError, match="another backbone"):
        run_probe(other, progress=False)
    ok = run_probe(_cfg(synth_small, store, "lvef", "standard", f"probe_checkpoint={saved}"), progress=False)
    assert ok


@pytest.mark.parametrize("protocol", ["standard", "robustness", "pediatric_transfer"])
def test_a_probe_saved_for_another_task_is_refused_in_every_protocol(synth_small, store, protocol):
    # issue 13: an RVSP regression probe scored LVEF with rc 0 (only the backbone was checked)
    saved = _saved_lvef_probe(synth_small, store)
    rvsp = _relabelled(saved, store / "rvsp-probe.pt", task="rvsp", label="rvsp")
    with pytest.raises(ProbeCheckpointError, match="task 'rvsp' \\(this run needs 'lvef'\\); label 'rvsp'"):
        run_probe(_cfg(synth_small, store, "lvef", protocol, f"probe_checkpoint={rvsp}"), progress=False)


@pytest.mark.parametrize(
    "task, protocol",
    [
        ("lvef", "robustness"),
        ("lvef", "pediatric_transfer"),
        ("rvsp", "standard"),
        ("view", "sample_efficiency"),
    ],
)
def test_a_missing_saved_probe_is_refused_in_every_protocol(synth_small, store, task, protocol, monkeypatch):
    # issue 13: robustness, sample_efficiency and the multi-view path ignored probe_checkpoint
    _refuse_training(monkeypatch, "trained instead of refusing")
    cfg = _cfg(synth_small, store, task, protocol, f"probe_checkpoint={store / 'absent.pt'}")
    with pytest.raises(ProbeInputError, match="absent.pt"):
        run_probe(cfg, progress=False)


def test_a_view_probe_is_refused_for_lvef(synth_small, store):
    # issue 13: a view probe used for LVEF crashed with a broadcast error
    saved = _saved_lvef_probe(synth_small, store)
    ckpt = torch.load(saved, weights_only=True)
    bank = ProbeBank(
        ckpt["arch"]["kind"], {**ckpt["arch"]["head_kwargs"], "out_dim": 7}, [HeadSpec(1e-3, 0.1)]
    )
    bank.trained_steps += 1
    classes = ["A2C", "A3C", "A4C", "A5C", "PLAX", "PSAX", "SC"]
    view = store / "view-probe.pt"
    save_probe(view, bank, ProbeTask("classification", num_classes=7, class_names=classes),
               {**ckpt["meta"], "task": "view", "label": "view", "chosen_head": 0})  # fmt: skip
    with pytest.raises(
        ProbeCheckpointError, match="task_kind 'classification' .*out_dim 7 \\(this run needs 1\\)"
    ):
        run_probe(_cfg(synth_small, store, "lvef", "standard", f"probe_checkpoint={view}"), progress=False)


def test_evaluating_a_saved_probe_keeps_the_training_records(synth_small, store, monkeypatch):
    # issue 13: an evaluation record could overwrite the training record of the same probe
    saved = _saved_lvef_probe(synth_small, store)
    trained = {
        p: p.read_bytes()
        for p in (store / "store" / "records" / "lvef" / "standard").rglob("*internal-seed0-*")
        if "-eval-" not in p.name  # not an evaluation written by an earlier test
    }
    _refuse_training(monkeypatch, "a saved probe is not retrained")
    written = run_probe(
        _cfg(synth_small, store, "lvef", "standard", f"probe_checkpoint={saved}"), progress=False
    )
    assert all("-eval-" in p.name for p in written) and not set(written) & set(trained)
    assert {p: p.read_bytes() for p in trained} == trained  # untouched
    ours = next(
        r
        for r in map(json.loads, map(Path.read_text, written))
        if r["backbone"] == "pixel_stats" and r["condition"] == "internal"
    )
    assert ours["evaluation_of"] == str(saved) and ours["probe_checkpoint"] == str(saved)
    assert ours["chosen"]["loaded_from"] == str(saved)
    ours_trained = [p for p in trained if p.suffix == ".json" and "pixel_stats" in str(p)]
    newest = max(ours_trained, key=os.path.getmtime)
    original = json.loads(newest.read_text())  # the run that wrote the checkpoint last
    assert ours["metrics"]["mae"]["value"] == pytest.approx(original["metrics"]["mae"]["value"], rel=1e-6)


def test_robustness_and_pediatric_transfer_evaluate_a_saved_probe(synth_small, store, monkeypatch):
    saved = _saved_lvef_probe(synth_small, store)
    _refuse_training(monkeypatch, "a saved probe is not retrained")
    rob = run_probe(
        _cfg(synth_small, store, "lvef", "robustness", f"probe_checkpoint={saved}"), progress=False
    )
    assert len(_conditions(rob)) == 7 and all("-eval-" in p.name for p in rob)
    # an adult probe is the zero-shot condition; a pediatric-trained one would be fine_tuned
    ped = run_probe(
        _cfg(synth_small, store, "lvef", "pediatric_transfer", f"probe_checkpoint={saved}"), progress=False
    )
    assert _conditions(ped) == ["zero_shot"]
    elsewhere = _relabelled(saved, store / "elsewhere.pt", train_dataset="/nowhere")
    with pytest.raises(ProbeCheckpointError, match="neither this task's adult"):
        run_probe(
            _cfg(synth_small, store, "lvef", "pediatric_transfer", f"probe_checkpoint={elsewhere}"),
            progress=False,
        )


def test_the_multi_view_path_evaluates_the_variant_a_saved_probe_was_trained_as(
    synth_small, store, monkeypatch
):
    folder = store / "store" / "probes" / "rvsp" / "pixel_stats"
    if not (folder / "standard-multi_view-seed0.pt").is_file():
        run_probe(_cfg(synth_small, store, "rvsp", "standard"), progress=False)
    _refuse_training(monkeypatch, "a saved probe is not retrained")
    cfg = _cfg(
        synth_small, store, "rvsp", "standard", f"probe_checkpoint={folder / 'standard-multi_view-seed0.pt'}"
    )
    written = run_probe(cfg, progress=False)
    assert _conditions(written) == ["multi_view"] and all("-eval-" in p.name for p in written)
    lvef = _saved_lvef_probe(synth_small, store)
    with pytest.raises(ProbeCheckpointError, match="probe_kind 'attentive'"):
        run_probe(_cfg(synth_small, store, "rvsp", "standard", f"probe_checkpoint={lvef}"), progress=False)


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


# ----- augmented training views (probe.aug_views) ----------
def test_train_loaders_draw_one_augmented_view_per_epoch():
    views = [torch.utils.data.TensorDataset(torch.full((4, 1), float(v))) for v in range(3)]
    for_epoch = training.train_loaders(views, batch_size=4, seed=5)
    used = [views.index(for_epoch(e).dataset) for e in range(9)]
    assert used == [aug_view_for_epoch(e, 3, seed=5) for e in range(9)]
    assert all(sorted(used[i : i + 3]) == [0, 1, 2] for i in (0, 3, 6))  # each view once per round
    single = training.train_loaders(views[:1], batch_size=4, seed=5)
    assert {id(single(e).dataset) for e in range(4)} == {id(views[0])}


def test_aug_views_trains_each_epoch_on_a_cached_augmented_view(synth_small, tmp_path, monkeypatch):
    used: list[int | None] = []
    real = training.loader

    def spy(ds, batch_size, shuffle, seed, multiview=False):
        if shuffle:  # training loaders only
            used.append(ds.data.features.meta["key_parts"]["aug_view"])
        return real(ds, batch_size, shuffle, seed, multiview)

    monkeypatch.setattr(training, "loader", spy)
    cfg = _cfg(
        synth_small, tmp_path, "lvef", "standard", "probe.aug_views=2", "protocol.conditions=[internal]"
    )
    written = run_probe(cfg, progress=False)
    epochs = cfg["probe"]["epochs"]
    assert used[1:] == [aug_view_for_epoch(e, 2, seed=0) for e in range(epochs)]  # [0]: counting steps
    # the record says so (the report's setup table reads it)
    chosen = [c for c in (json.loads(p.read_text())["chosen"] for p in written) if c]  # not the trivial
    assert chosen and {c["probe"]["aug_views"] for c in chosen} == {2}
    assert used[1] != used[2]  # consecutive epochs of a round differ
    train = [
        e["key_parts"] for e in FeatureCache(cfg["cache_dir"]).entries() if e["key_parts"]["split"] == "train"
    ]
    assert sorted(p["aug_view"] for p in train) == [0, 1]
    assert all(p["mode"] == "random" and "RandomResizedCrop" in json.dumps(p["transform"]) for p in train)
