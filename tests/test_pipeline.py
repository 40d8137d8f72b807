"""The whole study at the `tiny` size: every stage, all six tables, the report, predict on real formats."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from echojepa.pipeline import Study, load_study


@pytest.fixture(scope="module")
def study(synth_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    (root / "data").mkdir()
    (root / "data" / "synth-small-s0").symlink_to(synth_small)  # reuse the session's world
    s = Study("tiny", root)
    summary = s.run()
    return s, summary


def test_every_table_is_complete_with_finite_numbers(study):
    from echojepa.report.records import load_records
    from echojepa.report.tables import build_tables, complete

    s, _ = study
    tables = build_tables(load_records(s.store))
    assert [t.title for t in tables] == [
        "Controlled Comparison", "LVEF Estimation", "Sample Efficiency on View Classification",
        "Robustness to Acoustic Degradation", "Multi-View RVSP Estimation", "Adult to Pediatric Transfer",
    ]  # fmt: skip
    for t in tables:
        assert complete(t), t.title
        names = [r.label for r in t.rows if not r.summary]
        assert {"trivial", "pixel_stats", "random_vit", "echomae_demo", "echojepa_demo"} <= set(names), (
            t.title
        )


def test_report_files_hold_the_tables(study):
    s, summary = study
    md = (s.runs / "report" / "report.md").read_text()
    html = (s.runs / "report" / "report.html").read_text()
    for title in (
        "Controlled Comparison",
        "Robustness to Acoustic Degradation",
        "Adult to Pediatric Transfer",
    ):
        assert title in md and title in html
    assert list((s.runs / "report" / "figures").glob("*.png"))
    assert summary["report"]["html"].endswith("report.html")


def test_rerun_resumes_and_skips_every_finished_stage(study):
    s, _ = study
    again = Study("tiny", s.root)
    again.run()
    assert again.timings == {}  # nothing recomputed


def test_recipe_trials_report_online_probe_validation_curves_with_references(study):
    s, _ = study
    trials = s.trials()
    assert list(trials) == ["short"]
    t = trials["short"]
    assert t["steps"] == 3 and t["overrides"] == ["trainer.max_steps=3"]
    assert t["curves"]["view_acc"]["steps"][0] == 0 and t["curves"]["view_acc"]["steps"][-1] == 3
    assert {"random_init", "pixel_stats", "trivial"} <= set(t["references"])
    saved = json.loads((s.runs / "recipes" / "recipes.json").read_text())
    assert saved["short"]["curves"] == t["curves"]
    # the trial is tracked apart from the study's own pretraining runs
    assert (s.trial_dir("short") / "online_probe.csv").exists()


def test_recipe_trials_run_only_the_named_recipes_and_keep_earlier_trials(study, monkeypatch):
    s, _ = study
    with pytest.raises(ValueError, match="no recipe"):
        s.trials(["not_a_recipe"])
    monkeypatch.setitem(s.cfg, "recipes", {**s.cfg["recipes"], "other": s.cfg["recipes"]["short"]})
    first = s.trials(["short"])
    assert "other" not in first and not s.trial_dir("other").exists()  # not named: not pretrained
    index = s.runs / "recipes" / "recipes.json"
    index.write_text(json.dumps({**first, "earlier_round": first["short"]}))  # a trial of an earlier round
    trials = s.trials(["short"])
    assert set(trials) == {"short", "earlier_round"}  # it stays in the comparison and the file
    assert json.loads(index.read_text())["earlier_round"] == first["short"]


def test_publish_copies_results_and_provenance_but_no_caches(study, tmp_path):
    s, _ = study
    dest = s.publish(tmp_path / "published", command="scripts/demo.py --study tiny")
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert {"report.md", "study-summary.json", "provenance.json"} <= names
    assert {"pretrain-jepa-online_probe.csv", "pretrain-mae-summary.json"} <= names
    assert any(n.startswith("figures/") and n.endswith(".png") for n in names)
    assert not any(n.endswith((".pt", ".ckpt", ".npy", ".db")) for n in names)
    provenance = json.loads((dest / "provenance.json").read_text())
    assert provenance["command"] == "scripts/demo.py --study tiny"
    assert provenance["wall_s"] is not None and provenance["date"]


def test_provenance_names_the_commit_the_run_started_at_not_a_later_checkout(study, tmp_path, monkeypatch):
    import echojepa.pipeline

    s, _ = study
    started = json.loads((s.runs / "study-summary.json").read_text())["commit"]
    monkeypatch.setattr(echojepa.pipeline, "git_commit", lambda: "moved0")  # commits made during the run
    dest = s.publish(tmp_path / "published", command="scripts/demo.py --study tiny")
    assert json.loads((dest / "provenance.json").read_text())["commit"] == (started or "moved0")


def test_report_only_redraws_from_the_records_and_names_the_report_commit(study, tmp_path, monkeypatch):
    import echojepa.pipeline

    s, _ = study
    before = json.loads((s.runs / "study-summary.json").read_text())
    records = sorted(p.name for p in s.store.rglob("*.json"))
    (s.runs / "report" / "report.md").unlink()
    s.publish(tmp_path / "pub", command="the run")  # published once before the redraw
    monkeypatch.setattr(echojepa.pipeline, "git_commit", lambda: "redraw0")
    summary = s.rebuild_report()
    assert (s.runs / "report" / "report.md").exists()
    assert sorted(p.name for p in s.store.rglob("*.json")) == records  # nothing evaluated again
    assert {k: summary[k] for k in ("commit", "seconds", "stages")} == {
        k: before[k] for k in ("commit", "seconds", "stages")
    }
    assert summary["report_commit"] == "redraw0"
    provenance = json.loads((s.publish(tmp_path / "pub", command="x") / "provenance.json").read_text())
    assert provenance["report_commit"] == "redraw0" and provenance["wall_s"] == before["seconds"]
    assert provenance["command"] == "the run" and provenance["report_command"] == "x"


def test_report_only_on_a_study_that_has_not_finished_is_refused_in_one_line(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"
    out = subprocess.run(
        [sys.executable, str(script), "--study", "tiny", "--root", str(tmp_path), "--report-only"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "study-summary.json" in out.stderr
    assert "Traceback" not in out.stderr


def test_publish_again_drops_figures_the_new_report_no_longer_draws(study, tmp_path):
    s, _ = study
    dest = tmp_path / "published"
    (dest / "figures").mkdir(parents=True)
    stale = dest / "figures" / "Probe_attention_on_x.dcm_predicted_view_A3C.png"
    stale.write_bytes(b"old")
    s.publish(dest, command="scripts/demo.py --study tiny")
    assert not stale.exists()
    drawn = {p.name for p in (s.runs / "report" / "figures").glob("*.png")}
    assert {p.name for p in (dest / "figures").glob("*.png")} == drawn


def test_predict_on_synthetic_dicom_and_avi_without_identifiers(study, capsys):
    from echojepa.cli.predict import main as predict_main

    s, _ = study
    bundle = s.runs / "model" / "echojepa_demo.bundle.pt"
    dicom = sorted((s.world / "mimic_iv_echo" / "files").rglob("*.dcm"))[0]
    avi = sorted((s.world / "echonet_dynamic" / "Videos").glob("*.avi"))[0]
    assert predict_main([str(dicom), str(avi), "--checkpoint", str(bundle), "--json"]) == 0
    out = capsys.readouterr().out
    results = json.loads(out)
    assert len(results) == 2
    for r in results:
        assert r["scorable"] is True
        probs = list(r["view"]["probabilities"].values())
        assert np.isclose(sum(probs), 1.0, atol=1e-4)
    assert "CANARY" not in out  # the synthetic DICOMs carry made-up identifiers that must never leak


def test_pretrained_and_random_init_side_by_side(study):
    """Both run through the same probes; at this size no ordering is asserted (see README)."""
    from echojepa.report.records import load_records

    s, _ = study
    recs = [
        r
        for r in load_records(s.store)
        if r["task"] == "lvef" and r["protocol"] == "standard" and r["condition"] == "internal"
    ]
    maes = {r["backbone"]: r["metrics"]["mae"]["value"] for r in recs}
    assert {"random_vit", "echojepa_demo", "echomae_demo"} <= set(maes)
    assert all(np.isfinite(v) for v in maes.values())
    print("tiny-study LVEF MAE:", {k: round(v, 2) for k, v in sorted(maes.items())})


def test_a_repeat_seed_pretrains_again_and_repeats_its_evaluations_under_the_same_names(study):
    import torch

    from echojepa.report.claims import seed_claims
    from echojepa.report.paired import Pairing
    from echojepa.report.records import ResultSet, load_records
    from echojepa.report.tables import build_tables

    s, _ = study
    for objective in ("jepa", "mae"):
        first, again = (
            torch.load(s.pretrain_dir(objective, k) / "reference.pt", weights_only=True)["encoder"]
            for k in (0, 1)
        )
        assert s.pretrain_dir(objective, 1).name == f"{objective}-seed1"
        assert any(not torch.equal(first[n], again[n]) for n in first)  # another seed, other weights
    lvef = [r for r in load_records(s.store) if (r["task"], r["protocol"]) == ("lvef", "standard")]
    seeds = {(r["backbone"], r["condition"]): set() for r in lvef}
    for r in lvef:
        seeds[(r["backbone"], r["condition"])].add(r["seed"])
    assert {k: v for k, v in seeds.items() if k[0] != "trivial"} == {
        (b, c): {0, 1} for b in s.cfg["backbones"] for c in ("internal", "external")
    }
    view = [r for r in load_records(s.store) if (r["task"], r["protocol"]) == ("view", "standard")]
    assert {r["seed"] for r in view} == {0}  # only the repeated evaluations run at the repeat seed
    cells = {r.label: r.cells for r in build_tables(load_records(s.store))[1].rows if not r.summary}
    assert cells["echojepa_demo"][0].n_seeds == 2  # mean ± sd over the two seeds
    claims = [
        c
        for c in seed_claims(ResultSet.from_records(load_records(s.store)), Pairing(s.store))
        if "LVEF MAE, internal" in c.subject
    ]
    assert claims and all(c.result is not None and c.result.n_seeds == 2 for c in claims)
    assert {"jepa-seed1", "mae-seed1"} <= set(s.pretrain_runs())
    assert (s.backbone_cfg("random_vit")["seed"], s.backbone_cfg("random_vit", 1)["seed"]) == (0, 1)


def test_repeats_a_study_cannot_run_are_refused_naming_the_study():
    from echojepa.study_config import check_repeats

    base = {"seed": 0, "evaluations": [["lvef", "standard"], ["view", "sample_efficiency"]]}
    check_repeats({**base, "repeats": {"seeds": [1, 2], "evaluations": [["lvef", "standard"]]}}, "x")
    for seeds, evaluations, why in (
        ([0], [["lvef", "standard"]], "differ from seed"),
        ([1, 1], [["lvef", "standard"]], "distinct"),
        ([1], [["view", "standard"]], "not in evaluations"),
        ([1], [["view", "sample_efficiency"]], "probe seeds of its own"),
    ):
        with pytest.raises(ValueError, match=why):
            check_repeats({**base, "repeats": {"seeds": seeds, "evaluations": evaluations}}, "x")


def _bare_study(root, monkeypatch) -> Study:
    """A study whose stages are stubs: only the stage bookkeeping runs (no world, no training)."""
    s = Study("tiny", root)
    monkeypatch.setitem(s.cfg, "evaluations", [["lvef", "standard"]])
    monkeypatch.setitem(s.cfg, "backbones", {"pixel_stats": {}})
    monkeypatch.setattr(Study, "evaluation_cfg", lambda self, *args: {})
    return s


def test_an_evaluation_marker_whose_write_fails_is_absent_so_the_stage_reruns(tmp_path, monkeypatch):
    import os

    import echojepa.probe.runner

    runs = []
    monkeypatch.setattr(echojepa.probe.runner, "run_probe", lambda cfg: runs.append(cfg) or [])
    s = _bare_study(tmp_path, monkeypatch)
    real_replace = os.replace

    def crash(*args, **kwargs):
        raise OSError(5, "Input/output error")  # the machine dies while the marker is being published

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        s.evaluate()
    monkeypatch.setattr(os, "replace", real_replace)
    markers = s.runs / "study-markers"
    assert not markers.exists() or not list(markers.iterdir())  # no marker, not even a temp file
    s.evaluate()
    assert len(runs) == 2 and [p.name for p in markers.iterdir()] == ["lvef-standard-pixel_stats.json"]


def test_a_world_without_its_manifest_is_written_again(tmp_path, monkeypatch):
    import json

    import echojepa.synth.ensure
    from echojepa.synth.config import GENERATOR_VERSION, load_config

    calls = []
    # ensure_world holds its own reference to the writer: that is the one to replace
    monkeypatch.setattr(echojepa.synth.ensure, "generate", lambda out, *a, **k: calls.append(out))
    s = _bare_study(tmp_path, monkeypatch)
    (s.world / "echonet_dynamic").mkdir(parents=True)  # an interrupted earlier run
    s.synth()
    assert calls == [s.world]
    w = s.cfg["world"]
    current = {
        "generator": GENERATOR_VERSION,
        "variation": load_config(w["preset"]).variation,
        "preset": load_config(w["preset"]).name,
        "seed": int(w["seed"]),
    }
    (s.world / "manifest.json").write_text(json.dumps(current))
    s.synth()
    assert calls == [s.world]  # complete and current: skipped
    (s.world / "manifest.json").write_text(json.dumps({**current, "seed": int(w["seed"]) + 1}))
    s.synth()
    assert calls == [s.world, s.world]  # complete but another seed's world: written again


def test_a_study_built_on_the_demo_drops_the_backbones_it_sets_to_null():
    science, demo = load_study("science"), load_study("demo")
    assert list(science["backbones"]) == ["pixel_stats", "random_vit", "echomae", "echojepa"]
    assert list(demo["backbones"]) == ["pixel_stats", "random_vit", "echomae_demo", "echojepa_demo"]


def test_robustness_and_pediatric_zero_shot_evaluate_the_standard_head(study):
    from echojepa.report.records import load_records

    s, _ = study
    recs = [r for r in load_records(s.store) if r["task"] == "lvef" and r["backbone"] == "random_vit"]
    by = {(r["protocol"], r["condition"]): r for r in recs if r["seed"] == 0}  # the study's seed
    head = str(s.standard_probe("random_vit", "lvef"))
    assert by[("robustness", "original")]["evaluation_of"] == head
    assert by[("pediatric_transfer", "zero_shot")]["evaluation_of"] == head
    assert by[("pediatric_transfer", "fine_tuned")]["evaluation_of"] is None  # trained on pediatric folds
    # the robustness table's undegraded row is the standard table's head on the same test videos
    standard, original = by[("standard", "internal")], by[("robustness", "original")]
    assert original["metrics"]["mae"]["value"] == pytest.approx(standard["metrics"]["mae"]["value"], rel=1e-6)


def test_without_reuse_or_a_standard_evaluation_every_protocol_trains_its_own_probe(tmp_path, monkeypatch):
    s = Study("tiny", tmp_path)
    runs = s.evaluation_runs("random_vit", "lvef", "pediatric_transfer")
    assert [r.get("probe_checkpoint") for r in runs] == [str(s.standard_probe("random_vit", "lvef")), None]
    assert runs[1]["protocol"]["conditions"] == ["fine_tuned"]
    assert [r["probe_checkpoint"] for r in s.evaluation_runs("random_vit", "lvef", "robustness")] == [
        str(s.standard_probe("random_vit", "lvef"))
    ]
    assert s.evaluation_runs("random_vit", "view", "sample_efficiency")[0].get("probe_checkpoint") is None
    for evaluations in ([["lvef", "robustness"]], [["lvef", "robustness"], ["lvef", "standard"]]):
        monkeypatch.setitem(s.cfg, "evaluations", evaluations)  # no standard head saved before it
        assert s.evaluation_runs("random_vit", "lvef", "robustness")[0].get("probe_checkpoint") is None
    monkeypatch.setitem(s.cfg, "evaluations", [["lvef", "standard"], ["lvef", "robustness"]])
    monkeypatch.setitem(s.cfg, "reuse_standard_probe", False)
    assert s.evaluation_runs("random_vit", "lvef", "robustness")[0].get("probe_checkpoint") is None
