"""Paired comparisons from the results store: two evaluations scored on the same test items.

Two backbones probed for the same task, protocol and condition predict the same test items; so do two
conditions of one backbone (clean vs degraded videos). Their metric difference is then estimated with a
paired bootstrap (`echojepa.metrics.paired_bootstrap`): patients are resampled once per resample and the
same draw applies to every side, so what the items share cancels, and the CI is that of the difference
rather than two overlapping single CIs.

Predictions come from the records' predictions CSVs (columns `id`, `patient`, `target`, `prediction`
and `prob_<class>` for classification, as the probe runner writes them), aligned by item id. Sides whose
items, patients or targets differ are refused with a `PairingError` naming the files, never compared
on a silently shrunken set; `common_only=True` is the explicit exception for comparisons that are
meant to run on the items both sides scored (the caller states how many were set aside).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from echojepa.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    PairedDifference,
    SideFn,
    paired_bootstrap,
)
from echojepa.report.records import metric_value, resolve_csv

# Which way is better for each metric the paired bootstrap supports.
METRIC_BETTER = {
    "mae": "lower",
    "rmse": "lower",
    "r2": "higher",
    "pearson_r": "higher",
    "accuracy": "higher",
    "balanced_accuracy": "higher",
}
ID_COLUMNS = ("id", "record_id")  # the runner writes `id`; older stores and fixtures `record_id`
# A metric the records do not store (Pearson r: the runner records MAE, RMSE, R2 and the AUROC) is
# compared all the same; the CSV is then checked against this stored metric of the same kind instead.
IDENTITY_METRIC = {"regression": "mae", "classification": "accuracy"}
DEFAULT_RESAMPLES = 1000  # used only when no record states its own n_resamples
# A CSV reproduces its record's metric when they agree to this tolerance: the runner writes predictions
# with 9 significant digits (6 before 2026-12-02), which moves an MAE or an R2 by far less than 1e-4
# (relative, or absolute near 0); an accuracy is exact (argmax ties: _argmax_as_predicted).
REPRODUCE_RTOL, REPRODUCE_ATOL = 1e-4, 1e-4


class PairingError(ValueError):
    """Two or more evaluations that cannot be compared item by item; the message says why."""


@dataclass(frozen=True)
class Predictions:
    """One evaluation's test predictions. Regression: target and output are float [n]. Classification:
    target is the class index [n] and output the class scores [n, C]."""

    path: Path
    ids: list[str]
    patients: list[str]
    target: np.ndarray
    output: np.ndarray
    kind: str  # "regression" | "classification"
    classes: tuple[str, ...] = ()

    def reorder(self, ids: Sequence[str]) -> Predictions:
        pos = {item: i for i, item in enumerate(self.ids)}
        idx = np.array([pos[item] for item in ids], dtype=np.int64)
        return Predictions(
            self.path,
            list(ids),
            [self.patients[i] for i in idx],
            self.target[idx],
            self.output[idx],
            self.kind,
            self.classes,
        )


def _class_index(path: Path, value: str, classes: list[str], column: str) -> int:
    if value in classes:
        return classes.index(value)
    try:
        i = int(value)
    except ValueError:
        i = -1
    if not 0 <= i < len(classes):
        raise ValueError(f"{path}: {column} {value!r} is not one of the classes {classes}")
    return i


def _argmax_as_predicted(path: Path, probs: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The class scores with the run's own predictions as their argmax. Rounded probabilities can tie
    two classes the probe told apart (CSVs written with 6 significant digits before 2026-12-02 did:
    0.399301 twice; or any CSV from elsewhere); the `prediction` column says which one it chose, so the
    tied winner gets a nudge far below the rounding. A prediction that is not among the row's top
    scores is not a tie but a CSV at odds with itself: refused."""
    rows = np.arange(len(pred))
    top = probs.max(axis=1)
    chosen = probs[rows, pred]
    if np.any(chosen < top):
        i = int(np.flatnonzero(chosen < top)[0])
        raise ValueError(f"{path}: row {i + 2} predicts a class that is not its highest probability")
    ties = (probs == top[:, None]).sum(axis=1) > 1
    if not ties.any():
        return probs
    out = probs.copy()
    out[rows[ties], pred[ties]] += 1e-9 * np.maximum(top[ties], 1e-12)
    return out


def read_predictions(path: Path) -> Predictions:
    """A predictions CSV as `Predictions`; ValueError naming the file when it lacks what pairing needs
    (an id column, `patient`, `target`, and `prediction` or `prob_<class>` columns)."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    id_col = next((c for c in ID_COLUMNS if c in fields), None)
    if id_col is None:
        raise ValueError(f"{path}: predictions CSV has no item id column ({' or '.join(ID_COLUMNS)})")
    for name in ("patient", "target"):
        if name not in fields:
            raise ValueError(f"{path}: predictions CSV lacks the {name!r} column (has {fields})")
    if not rows:
        raise ValueError(f"{path}: predictions CSV has no rows")
    ids = [r[id_col] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: item ids repeat, so predictions cannot be aligned by id")
    patients = [r["patient"] for r in rows]
    prob_cols = [c for c in fields if c.startswith("prob_")]
    if not prob_cols:
        try:
            target = np.array([float(r["target"]) for r in rows])
            output = np.array([float(r["prediction"]) for r in rows]) if "prediction" in fields else None
        except ValueError:
            target = output = None  # class names: a classification CSV without probabilities
        if target is not None:
            if output is None:
                raise ValueError(f"{path}: predictions CSV lacks the 'prediction' column (has {fields})")
            return Predictions(path, ids, patients, target, output, "regression")
        if "prediction" not in fields:
            raise ValueError(f"{path}: predictions CSV has neither 'prediction' nor prob_<class> columns")
    classes = (
        [c[len("prob_") :] for c in prob_cols]
        if prob_cols
        else sorted({r["target"] for r in rows} | {r["prediction"] for r in rows})
    )
    target = np.array([_class_index(path, r["target"], classes, "target") for r in rows], dtype=np.int64)
    if prob_cols:
        try:
            output = np.array([[float(r[c]) for c in prob_cols] for r in rows])
        except ValueError as err:
            raise ValueError(f"{path}: non-numeric class probability ({err})") from err
        if "prediction" in fields:
            pred = [_class_index(path, r["prediction"], classes, "prediction") for r in rows]
            output = _argmax_as_predicted(path, output, np.asarray(pred, dtype=np.int64))
    else:  # only the predicted class: its one-hot row is all accuracy needs
        pred = [_class_index(path, r["prediction"], classes, "prediction") for r in rows]
        output = np.eye(len(classes))[pred]
    return Predictions(path, ids, patients, target, output, "classification", tuple(classes))


@dataclass
class Pairing:
    """How the report computes paired CIs: where the store is, what a missing predictions CSV does
    ("error": raise, as the report's figures do; "skip": the CI is left out with the reason), the CI
    level and the bootstrap seed. Reads each CSV once."""

    store: Path
    missing: str = "error"
    alpha: float = 0.05
    seed: int = 0
    _cache: dict[str, Predictions] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.missing not in ("error", "skip"):
            raise ValueError(f"missing must be 'error' or 'skip', got {self.missing!r}")

    def shown(self, path: Path | str) -> str:
        """A path as messages show it: relative to the store when inside it (tables stay readable)."""
        try:
            return str(Path(path).resolve().relative_to(Path(self.store).resolve()))
        except ValueError:
            return str(path)

    def predictions(self, record: dict) -> Predictions:
        if record.get("predictions_csv") is None:
            where = self.shown(record["_file"]) if "_file" in record else record["backbone"]
            raise PairingError(f"{where} has no predictions CSV")
        try:
            path = resolve_csv(record, Path(self.store))
        except FileNotFoundError as err:
            if self.missing == "error":
                raise
            raise PairingError(str(err)) from err
        key = str(path.resolve())
        if key not in self._cache:
            self._cache[key] = replace(read_predictions(path), path=Path(self.shown(path)))
        return self._cache[key]


@dataclass(frozen=True)
class Comparison:
    """A paired result plus how many items were set aside (only with ``common_only``)."""

    result: PairedDifference
    set_aside: int = 0


def improvement(a: np.ndarray, b: np.ndarray, better: str, relative: bool = False) -> np.ndarray:
    """How much better a is than b, positive when a is better (a lower MAE, a higher accuracy);
    relative: as a fraction of b's value (the seed's Relative Improvement of an MAE)."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    gain = np.asarray(a, dtype=np.float64) - b if better == "higher" else np.asarray(b, dtype=np.float64) - a
    if not relative:
        return gain
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(b) != 0, gain / np.abs(b), np.nan)


def _by_seed(records: list[dict]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for r in records:
        if r["seed"] in out:
            raise PairingError(f"{r.get('_file', r['backbone'])}: seed {r['seed']} appears twice")
        out[r["seed"]] = r
    return out


def _common_items(preds: list[Predictions], common_only: bool) -> tuple[list[str], int]:
    first = preds[0]
    reference = set(first.ids)
    union = set().union(*(p.ids for p in preds))
    common = reference.intersection(*(p.ids for p in preds))
    if not common_only:
        for p in preds[1:]:
            mine = set(p.ids)
            if mine != reference:
                raise PairingError(
                    f"test items differ between {first.path} and {p.path} "
                    f"({len(reference - mine)} only in the first, {len(mine - reference)} only in the second)"
                )
    if not common:
        raise PairingError(f"no test item is shared by {', '.join(str(p.path) for p in preds)}")
    return sorted(common), len(union) - len(common)


def _check_same_items(preds: list[Predictions]) -> None:
    first = preds[0]
    for p in preds[1:]:
        if p.patients != first.patients:
            i = next(k for k, (x, y) in enumerate(zip(first.patients, p.patients)) if x != y)
            raise PairingError(
                f"item {first.ids[i]!r} belongs to patient {first.patients[i]!r} in {first.path} "
                f"but {p.patients[i]!r} in {p.path}"
            )
        same = (
            np.allclose(p.target, first.target, rtol=1e-5, atol=1e-6)
            if p.kind == "regression"
            else p.classes == first.classes and np.array_equal(p.target, first.target)
        )
        if not same:
            raise PairingError(f"the targets of the same items differ between {first.path} and {p.path}")


def _check_reproduces(
    record: dict, p: Predictions, metric: str, fns: Mapping[str, Callable[..., np.ndarray]]
) -> None:
    """The CSV must give the record's own metric value (up to the CSV's rounding), so the
    paired CI is about the numbers the tables show and not about some other run's predictions. A
    metric the record does not store is checked through IDENTITY_METRIC: the CSV is still this
    record's predictions."""
    if metric not in record["metrics"]:
        metric = IDENTITY_METRIC[p.kind]
    fn = fns[metric]
    stored = metric_value(record, metric)
    if stored is None:
        raise PairingError(f"{p.path}: its record has no finite {metric!r}")
    again = float(fn(p.output, p.target, weights=None)[0])
    if not math.isclose(again, stored, rel_tol=REPRODUCE_RTOL, abs_tol=REPRODUCE_ATOL):
        raise PairingError(
            f"{p.path} does not reproduce its record's {metric} "
            f"({again:.6g} from the CSV, {stored:.6g} stored)"
        )


def _resamples(records: list[dict], metric: str) -> int:
    counts = [r["metrics"].get(metric, {}).get("n_resamples") for r in records]
    counts = [c for c in counts if isinstance(c, int) and not isinstance(c, bool) and c > 0]
    return max(counts) if counts else DEFAULT_RESAMPLES


def compare(
    sides: Mapping[str, list[dict]],
    metric: str,
    statistic: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    pairing: Pairing,
    *,
    common_only: bool = False,
    n_resamples: int | None = None,
) -> Comparison:
    """The paired bootstrap of ``statistic`` over ``sides`` (name -> the records, one per seed, of one
    evaluation). Seeds are paired by seed number and must be the same on every side; every record's
    test items (ids, their patients and targets) must be the same unless ``common_only``. The number of
    resamples defaults to the records' own (their single CIs used it). Raises PairingError."""
    fns = REGRESSION_METRICS | CLASSIFICATION_METRICS
    if metric not in fns:
        raise PairingError(f"no paired bootstrap for metric {metric!r} (have {', '.join(fns)})")
    seeded = {name: _by_seed(records) for name, records in sides.items()}
    empty = [name for name, recs in seeded.items() if not recs]
    if empty:
        raise PairingError(f"no records for {', '.join(empty)}")
    seeds = sorted(next(iter(seeded.values())))
    for name, recs in seeded.items():
        if sorted(recs) != seeds:
            raise PairingError(f"seeds differ: {name} has {sorted(recs)}, another side {seeds}")
    preds = {name: [pairing.predictions(recs[s]) for s in seeds] for name, recs in seeded.items()}
    flat = [p for ps in preds.values() for p in ps]
    kinds = {p.kind for p in flat}
    if len(kinds) != 1:
        raise PairingError(f"cannot pair regression with classification predictions ({flat[0].path})")
    expected = "regression" if metric in REGRESSION_METRICS else "classification"
    if kinds != {expected}:
        raise PairingError(
            f"metric {metric!r} needs {expected} predictions, {flat[0].path} holds {kinds.pop()}"
        )
    fn = fns[metric]
    for name, recs in seeded.items():
        for s, p in zip(seeds, preds[name]):
            _check_reproduces(recs[s], p, metric, fns)
    ids, set_aside = _common_items(flat, common_only)
    preds = {name: [p.reorder(ids) for p in ps] for name, ps in preds.items()}
    _check_same_items([p for ps in preds.values() for p in ps])

    def side(p: Predictions) -> SideFn:
        return lambda w: fn(p.output, p.target, weights=w)

    records = [r for recs in seeded.values() for r in recs.values()]
    result = paired_bootstrap(
        {name: [side(p) for p in ps] for name, ps in preds.items()},
        statistic,
        len(ids),
        groups=next(iter(preds.values()))[0].patients,
        n_resamples=n_resamples or _resamples(records, metric),
        alpha=pairing.alpha,
        seed=pairing.seed,
    )
    return Comparison(result, set_aside)


def compare_two(
    a: list[dict],
    b: list[dict],
    metric: str,
    pairing: Pairing,
    *,
    relative: bool = False,
    common_only: bool = False,
) -> Comparison:
    """How much better evaluation ``a`` is than ``b`` on ``metric`` (positive = a better; see
    `improvement`), with its paired CI."""
    better = METRIC_BETTER.get(metric)
    if better is None:
        raise PairingError(f"no paired bootstrap for metric {metric!r}")
    return compare(
        {"a": a, "b": b},
        metric,
        lambda v: improvement(v["a"], v["b"], better, relative),
        pairing,
        common_only=common_only,
    )


def degradation_gain(
    a: Mapping[str, list[dict]], b: Mapping[str, list[dict]], original: str, pairing: Pairing
) -> Comparison:
    """How much less ``a`` degrades than ``b`` (positive = a degrades less): the difference of their
    average degradation, mean over the degraded conditions of (MAE_cond - MAE_original) / MAE_original,
    every condition of both backbones scored on the same resampled patients. ``a``/``b``: condition ->
    records (seeds)."""
    if set(a) != set(b) or original not in a:
        raise PairingError(f"conditions differ: {sorted(a)} vs {sorted(b)} (need {original!r} in both)")
    degraded = [c for c in a if c != original]
    if not degraded:
        raise PairingError("no degraded condition to average over")

    def avg_deg(v: Mapping[str, np.ndarray], side: str) -> np.ndarray:
        base = v[f"{side}:{original}"]
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = [(v[f"{side}:{c}"] - base) / np.where(base != 0, base, np.nan) for c in degraded]
        return np.mean(rel, axis=0)

    sides = {f"a:{c}": recs for c, recs in a.items()} | {f"b:{c}": recs for c, recs in b.items()}
    return compare(sides, "mae", lambda v: avg_deg(v, "b") - avg_deg(v, "a"), pairing)
