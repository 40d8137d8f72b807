"""The seed's claims, each tested with the paired bootstrap CI of the difference it rests on.

For every claim the report says whether the 95 % CI of the improvement excludes 0, rather than reading
two overlapping per-model CIs. Which backbones play which role comes from the records'
`backbone_kind` (jepa, mae, random), so the same code serves the demo and the science studies:

- JEPA vs MAE and JEPA vs random-init: LVEF MAE (relative reduction) and view accuracy, standard
  protocol, internal test split;
- 1 % label efficiency: JEPA vs MAE view accuracy with 1 % of the labels (seeds paired and resampled);
- degradation: JEPA vs MAE average degradation, every condition on the same resampled patients;
- multi-view vs single-view: RVSP MAE of the same JEPA backbone's two probes, on the studies both
  scored (a study without the single view cannot be scored by that probe; the count set aside is
  stated).

A claim that cannot be tested (no backbone of a role, no records, no predictions CSV, different test
items) says why instead of showing a number.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass

from echojepa.metrics import PairedDifference
from echojepa.report.paired import Comparison, Pairing, PairingError, compare_two, degradation_gain
from echojepa.report.records import ResultSet, order_backbones
from echojepa.report.render import format_ci, format_value
from echojepa.report.tables import (
    FMT_GAIN,
    FMT_GAIN_PCT,
    FMT_GAIN_PTS,
    Source,
    is_fraction,
    robustness_records,
)

LOW_LABEL_FRACTION = 0.01  # the seed's label-efficiency claim: 1 % of the labelled training split


@dataclass(frozen=True)
class Claim:
    """One tested claim: what was compared, the paired result or why there is none."""

    claim: str  # the seed's claim, e.g. "JEPA vs MAE"
    subject: str  # what exactly: backbones, metric, evaluation
    fmt: str  # how the improvement reads (FMT_GAIN*)
    result: PairedDifference | None = None
    reason: str | None = None  # why it could not be tested
    note: str | None = None  # e.g. items set aside
    first: str = "the first"  # what the improvement is of (the first side)

    @property
    def verdict(self) -> str:
        if self.result is None:
            return "not tested"
        if not self.result.excludes_zero:
            return "CI includes 0: no difference shown"
        better = "better" if self.result.difference > 0 else "worse"
        return f"CI excludes 0: {self.first} {better}"

    def as_dict(self) -> dict:
        return {
            "claim": self.claim,
            "subject": self.subject,
            "first": self.first,
            "verdict": self.verdict,
            "result": None if self.result is None else self.result.as_dict(),
            "reason": self.reason,
            "note": self.note,
        }

    def text(self) -> str:
        """One line: subject, improvement with its CI, verdict (or the reason it was not tested)."""
        head = f"{self.claim}: {self.subject}" if self.subject else self.claim
        if self.result is None:
            return f"{head}: not tested: {self.reason}"
        r = self.result
        level = round(100 * (1 - r.alpha))
        ci = format_ci(*r.ci, self.fmt) if all(math.isfinite(c) for c in r.ci) else "[undefined]"
        seeds = f", {r.n_seeds} seeds" if r.n_seeds > 1 else ""
        extra = f"; {self.note}" if self.note else ""
        return (
            f"{head}: {format_value(r.difference, self.fmt)}, {level} % CI {ci} "
            f"({r.n_groups} patients, {r.n_items} items{seeds}, {r.n_valid} resamples){extra}: "
            f"{self.verdict}."
        )


def _by_kind(rs: ResultSet, kind: str) -> list[str]:
    pairs = {(r["backbone"], r["backbone_kind"]) for r in rs.records if r["backbone_kind"] == kind}
    return [name for name, _ in order_backbones(pairs)]


def _records(rs: ResultSet, backbone: str, source: Source) -> list[dict]:
    return [r for r in rs.records if r["backbone"] == backbone and source.matches(r)]


def _untested(claim: str, roles: dict[str, list[str]]) -> Claim:
    """A claim that lacks a backbone of some role (kind)."""
    kinds = " or ".join(repr(kind) for kind, names in roles.items() if not names)
    return Claim(claim, "", FMT_GAIN, reason=f"no backbone of kind {kinds} in the records")


def _tested(
    claim: str, subject: str, fmt: str, first: str, run: Callable[[], Comparison], what: str = ""
) -> Claim:
    try:
        comparison = run()
    except PairingError as err:
        return Claim(claim, subject, fmt, reason=str(err), first=first)
    note = (
        f"{comparison.set_aside} {what} scored by only one side set aside" if comparison.set_aside else None
    )
    return Claim(claim, subject, fmt, comparison.result, note=note, first=first)


def _pairwise(
    rs: ResultSet,
    pairing: Pairing,
    claim: str,
    kind_b: str,
    evaluations: list[tuple[str, Source, str, bool]],
) -> list[Claim]:
    """Every JEPA-kind backbone against every backbone of kind_b on each (label, source, fmt, relative)."""
    jepas, others = _by_kind(rs, "jepa"), _by_kind(rs, kind_b)
    if not jepas or not others:
        return [_untested(claim, {"jepa": jepas, kind_b: others})]
    out = []
    for a in jepas:
        for b in others:
            for label, source, fmt, relative in evaluations:

                def run(src: Source = source, rel: bool = relative, a: str = a, b: str = b) -> Comparison:
                    return compare_two(
                        _records(rs, a, src), _records(rs, b, src), src.metric, pairing, relative=rel
                    )

                out.append(_tested(claim, f"{a} vs {b}, {label}", fmt, a, run))
    return out


def _degradation(rs: ResultSet, pairing: Pairing) -> list[Claim]:
    claim = "Degradation"
    jepas, maes = _by_kind(rs, "jepa"), _by_kind(rs, "mae")
    if not jepas or not maes:
        return [_untested(claim, {"jepa": jepas, "mae": maes})]
    return [
        _tested(
            claim,
            f"{a} vs {b}, LVEF average degradation (Avg. Deg., lower is better; in points)",
            FMT_GAIN_PTS,
            a,
            lambda a=a, b=b: degradation_gain(
                robustness_records(rs, a), robustness_records(rs, b), "original", pairing
            ),
        )
        for a in jepas
        for b in maes
    ]


def _multiview(rs: ResultSet, pairing: Pairing) -> list[Claim]:
    claim = "Multi-view vs single-view"
    jepas = _by_kind(rs, "jepa")
    if not jepas:
        return [_untested(claim, {"jepa": jepas})]
    multi = Source("rvsp", "standard", "multi_view", "mae")
    single = Source("rvsp", "standard", "single_view", "mae")
    return [
        _tested(
            claim,
            f"{a} multi-view vs single-view probe, RVSP MAE (relative reduction)",
            FMT_GAIN_PCT,
            "multi-view",
            lambda a=a: compare_two(
                _records(rs, a, multi),
                _records(rs, a, single),
                "mae",
                pairing,
                relative=True,
                common_only=True,
            ),
            what="studies",
        )
        for a in jepas
    ]


def seed_claims(rs: ResultSet, pairing: Pairing) -> list[Claim]:
    """The seed's claims, in the order the report lists them."""
    lvef = Source("lvef", "standard", "internal", "mae")
    view = Source("view", "standard", "internal", "accuracy")
    controlled = [
        ("LVEF MAE, internal test (relative reduction)", lvef, FMT_GAIN_PCT, True),
        ("view accuracy, internal test", view, FMT_GAIN_PTS, False),
    ]
    low = Source("view", "sample_efficiency", is_fraction(LOW_LABEL_FRACTION), "accuracy")
    return [
        *_pairwise(rs, pairing, "JEPA vs MAE", "mae", controlled),
        *_pairwise(rs, pairing, "JEPA vs random-init", "random", controlled),
        *_pairwise(
            rs,
            pairing,
            "1 % label efficiency",
            "mae",
            [(f"view accuracy with {LOW_LABEL_FRACTION:.0%} of the labels", low, FMT_GAIN_PTS, False)],
        ),
        *_degradation(rs, pairing),
        *_multiview(rs, pairing),
    ]


METHOD = (
    'Each line: how much better the first model is than the second ("worse" when it is not), and the '
    "paired bootstrap CI of that improvement (+ = the first better): both sides are scored on the same "
    "test items, aligned by item id from the predictions CSVs, and each resample draws patients with "
    "replacement once for both sides; where an evaluation ran several seeds, the seeds (paired by seed) "
    'are resampled too. "CI excludes 0" means the difference is distinguishable from none at that level; '
    '"CI includes 0" means it is not.'
)


def claims_markdown(claims: list[Claim], level: int = 2) -> str:
    lines = [f"{'#' * level} Claims", "", f"_{METHOD}_", ""]
    if not claims:
        lines += ["_No claims to test._", ""]
    lines += [f"- {c.text()}" for c in claims]
    return "\n".join(lines) + "\n"


def claims_html(claims: list[Claim]) -> str:
    esc = html.escape
    parts = ["<h2>Claims</h2>", f'<p class="note">{esc(METHOD)}</p>', "<ul>"]
    parts += [f"<li>{esc(c.text())}</li>" for c in claims]
    parts.append("</ul>")
    return "\n".join(parts)
