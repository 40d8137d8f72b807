"""LVEF agreement beyond the MAE: each backbone's Bland-Altman bias, Pearson r and AUROC for EF < 50 %, on
the internal and the external test site.

An MAE mixes two failures a clinician tells apart. A constant offset (the readout is calibrated for the
training site and the new site's images move it) shows as the Bland-Altman bias, mean(predicted - true).
A loss of ranking (the features no longer order patients by EF) shows as a lower Pearson r and a lower
AUROC for detecting EF < 50 %; neither changes under a constant offset. On an external site the MAE can be
all offset while the ranking transfers, and this table shows which of the two happened.

Bias and r come from each record's predictions CSV, the AUROC from the record itself; over seeds, the mean
± sd. The rows "X vs Y" (the pairs the seed's claims compare) give the paired bootstrap CI of the
difference in r (``echojepa.report.paired``: patients resampled jointly, seeds paired). It reads the test
predictions the six tables already scored: nothing is chosen from it. The trivial row (a constant
prediction, r undefined) is left out.
"""

from __future__ import annotations

import numpy as np

from echojepa.metrics import weighted_bias, weighted_pearson_r
from echojepa.report.paired import Pairing, PairingError, compare_two
from echojepa.report.records import ResultSet, order_backbones
from echojepa.report.tables import (
    FMT_GAIN,
    FMT_MAE,
    FMT_SIGNED,
    Cell,
    Column,
    Row,
    Table,
    aggregate,
    comparison_pairs,
)

__all__ = ["SITES", "lvef_agreement_table"]

SITES = (("internal", "Internal"), ("external", "External"))
AUROC_PREFIX = "auroc_"  # the task's clinical-threshold AUROC (conf/task/lvef.yaml `binary.name`)


def _over_seeds(values: list[float]) -> Cell:
    if not values or not all(np.isfinite(values)):
        return Cell(n_seeds=len(values))
    arr = np.asarray(values, dtype=np.float64)
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else None
    return Cell(value=float(arr.mean()), sd=sd, n_seeds=len(arr))


def _auroc(records: list[dict]) -> Cell:
    """The records' AUROC at the task's threshold: the one metric named ``auroc_*`` (empty if none)."""
    names = {m for r in records for m in r["metrics"] if m.startswith(AUROC_PREFIX)}
    return aggregate(records, names.pop()) if len(names) == 1 else Cell(n_seeds=len(records))


def _site_cells(records: list[dict], pairing: Pairing, skipped: list[str]) -> list[Cell]:
    """[bias, r, AUROC] of one backbone at one site, over its seeds."""
    if any(r.get("predictions_csv") is None for r in records):  # a store written without predictions
        return [Cell(n_seeds=len(records)), Cell(n_seeds=len(records)), _auroc(records)]
    bias, r = [], []
    for record in sorted(records, key=lambda rec: rec["seed"]):
        try:
            p = pairing.predictions(record)
        except (
            PairingError
        ) as err:  # a named CSV missing under missing="skip": the cell stays empty, with why
            skipped.append(str(err))
            return [Cell(n_seeds=len(records)), Cell(n_seeds=len(records)), _auroc(records)]
        bias.append(float(weighted_bias(p.output, p.target)[0]))
        r.append(float(weighted_pearson_r(p.output, p.target)[0]))
    return [_over_seeds(bias), _over_seeds(r), _auroc(records)]


def lvef_agreement_table(rs: ResultSet, pairing: Pairing, skipped: list[str] | None = None) -> Table:
    """Backbones x (bias, r, AUROC) per test site, from the standard LVEF protocol's records. Reasons a
    cell is empty (a predictions CSV missing under ``pairing.missing == "skip"``) go to ``skipped``."""
    skipped = [] if skipped is None else skipped
    standard = [r for r in rs.select("lvef", "standard") if r["backbone_kind"] != "trivial"]
    backbones = order_backbones({(r["backbone"], r["backbone_kind"]) for r in standard})
    columns = [
        column
        for _, site in SITES
        for column in (
            Column("Bias", FMT_SIGNED, group=site),
            Column("r", FMT_MAE, better="higher", group=site),
            Column("AUROC", FMT_MAE, better="higher", group=site),
        )
    ]

    def of(name: str, condition: str) -> list[dict]:
        return [r for r in standard if r["backbone"] == name and r["condition"] == condition]

    rows = []
    for name, kind in backbones:
        cells: list[Cell] = []
        for condition, _ in SITES:
            mine = of(name, condition)
            cells += _site_cells(mine, pairing, skipped) if mine else [Cell(), Cell(), Cell()]
        rows.append(Row(name, kind, cells))
    failed: list[str] = []
    for a, b in comparison_pairs(rows):
        cells = []
        for condition, _ in SITES:
            gain = Cell(fmt=FMT_GAIN)
            try:
                result = compare_two(
                    of(a.label, condition), of(b.label, condition), "pearson_r", pairing
                ).result
                gain.value, gain.ci = result.difference, result.ci
            except PairingError as err:  # no records at this site, or CSVs that cannot be paired
                failed.append(f"{a.label} vs {b.label}, {condition}: {err}")
            cells += [Cell(text=""), gain, Cell(text="")]
        rows.append(Row(f"{a.label} vs {b.label}", "summary", cells, summary=True))
    notes = [
        "Bias: mean(predicted - true) in EF points (Bland-Altman), a constant offset the readout carries to "
        "the site; r: Pearson correlation of predicted with true EF; AUROC: detecting the task's clinical "
        "threshold (EF < 50 %) from the predicted EF. r and AUROC do not change under a constant offset. "
        "Over seeds, mean ± sd.",
        'Rows "X vs Y": how much higher X\'s r is than Y\'s ("worse" when lower), with the paired bootstrap '
        "95 % CI (+ = X higher); patients resampled jointly, seeds paired and resampled.",
        *(f"No paired CI for {reason}" for reason in failed),
    ]
    return Table("lvef_agreement", "LVEF Agreement: Offset vs Ranking", columns, rows, notes)
