"""The claims section: each seed claim tested with the paired CI of its difference, roles from kinds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from echojepa.report.claims import claims_html, claims_markdown, seed_claims
from echojepa.report.paired import Pairing
from echojepa.report.records import ResultSet, load_records

from .helpers import make_record, paired_store, record_path, write_record

SEED_CLAIMS = ["JEPA vs MAE", "JEPA vs random-init", "1 % label efficiency", "Degradation"]
SEED_CLAIMS.append("Multi-view vs single-view")


@pytest.fixture(scope="module")
def claims(tmp_path_factory: pytest.TempPathFactory) -> dict:
    store = paired_store(tmp_path_factory.mktemp("paired"))
    found = seed_claims(ResultSet.from_records(load_records(store)), Pairing(store))
    return {(c.claim, c.subject): c for c in found}


def _one(claims: dict, claim: str, subject_part: str = ""):
    hits = [c for (name, subject), c in claims.items() if name == claim and subject_part in subject]
    assert len(hits) == 1, (claim, subject_part, list(claims))
    return hits[0]


def test_every_seed_claim_is_tested_in_order(claims: dict) -> None:
    assert list(dict.fromkeys(name for name, _ in claims)) == SEED_CLAIMS
    assert all(c.result is not None for c in claims.values()), [c.reason for c in claims.values()]


def test_a_clearly_better_backbone_excludes_0_and_reads_better(claims: dict) -> None:
    lvef = _one(claims, "JEPA vs MAE", "LVEF MAE")
    assert lvef.result.difference > 0 and lvef.result.excludes_zero
    assert lvef.verdict == "CI excludes 0: echojepa better"
    text = lvef.text()
    assert "% better, 95 % CI [+" in text and "(20 patients, 40 items, 1000 resamples)" in text


def test_label_efficiency_pairs_and_resamples_the_seeds(claims: dict) -> None:
    low = _one(claims, "1 % label efficiency")
    assert low.result.n_seeds == 2 and "2 seeds" in low.text()


def test_multi_view_is_compared_on_the_studies_both_probes_scored_and_says_so(claims: dict) -> None:
    multi = _one(claims, "Multi-view vs single-view")
    assert multi.first == "multi-view" and multi.result.n_items == 16
    assert "4 studies scored by only one side set aside" in multi.text()


def test_degradation_is_tested_on_the_average_degradation(claims: dict) -> None:
    deg = _one(claims, "Degradation")
    assert deg.result.difference > 0  # echojepa degrades least by construction
    assert deg.verdict.startswith("CI ")


def test_roles_come_from_the_records_kinds_not_the_names(tmp_path: Path) -> None:
    store = paired_store(tmp_path, {"echomae": 4.0, "echojepa": 0.5})
    for path in (store / "records").rglob("*.json"):  # rename the kinds: echomae now plays JEPA
        record = json.loads(path.read_text())
        record["backbone_kind"] = {"mae": "jepa", "jepa": "mae"}[record["backbone_kind"]]
        path.write_text(json.dumps(record))
    found = seed_claims(ResultSet.from_records(load_records(store)), Pairing(store))
    lvef = next(c for c in found if c.claim == "JEPA vs MAE" and "LVEF" in c.subject)
    assert lvef.subject.startswith("echomae vs echojepa") and lvef.verdict == "CI excludes 0: echomae worse"
    random = next(c for c in found if c.claim == "JEPA vs random-init")
    assert random.result is None and "no backbone of kind 'random'" in random.reason


def test_a_claim_whose_items_differ_is_not_tested_and_says_why(tmp_path: Path) -> None:
    store = paired_store(tmp_path / "s", {"echomae": 4.0, "echojepa": 0.5})
    # an extra echomae evaluation on other items replaces its LVEF record (newer)
    extra = make_record(
        "echomae", "lvef", "standard", "internal", {"mae": 1.0}, created="2027-01-01T00:00:00+00:00"
    )
    csv = record_path(store, extra).with_suffix(".predictions.csv")
    csv.write_text("id,patient,target,prediction\nzz,p0,50,51\n")  # MAE 1.0, as the record says
    extra["predictions_csv"] = csv.name
    write_record(store, extra)
    found = seed_claims(ResultSet.from_records(load_records(store)), Pairing(store))
    lvef = next(c for c in found if c.claim == "JEPA vs MAE" and "LVEF" in c.subject)
    assert lvef.verdict == "not tested" and "test items differ" in lvef.reason


def test_claims_render_as_markdown_and_html(claims: dict) -> None:
    found = list(claims.values())
    md = claims_markdown(found)
    assert md.startswith("## Claims") and md.count("\n- ") == len(found)
    html = claims_html(found)
    assert html.count("<li>") == len(found) and "paired bootstrap" in html
