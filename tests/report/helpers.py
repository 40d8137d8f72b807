"""A fabricated results store, written the way the probe runner writes one (schema item 6)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

from echojepa.metrics import regression_metrics, weighted_accuracy, weighted_balanced_accuracy

# backbone -> kind, in the order the report must list them (floors first, then MAE, JEPA, others).
BACKBONES = {
    "train_mean": "trivial",
    "pixel_stats": "pixel_stats",
    "random_vit": "random",
    "echomae": "mae",
    "echojepa": "jepa",
    "echoprime": "echoprime",
}
VIEWS = ["A4C", "A2C", "PLAX", "PSAX"]
ROBUSTNESS = ["depth_low", "depth_med", "depth_high", "shadow_low", "shadow_med", "shadow_high"]
# The seed's EchoPrime robustness row: Avg. Deg. must come out as +16.8 %.
ECHOPRIME_ROBUSTNESS = [4.87, 5.58, 5.71, 5.91, 5.55, 5.61, 5.78]


def make_record(
    backbone: str,
    task: str,
    protocol: str,
    condition: str,
    metrics: dict[str, float],
    seed: int = 0,
    ci: dict[str, tuple[float, float]] | None = None,
    kind: str | None = None,
    created: str = "2026-01-01T00:00:00+00:00",
    predictions_csv: str | None = None,
) -> dict:
    ci = ci or {}
    return {
        "backbone": backbone,
        "backbone_kind": kind or BACKBONES[backbone],
        "task": task,
        "protocol": protocol,
        "condition": condition,
        "split": "test",
        "dataset": "synthetic",
        "n": 40,
        "seed": seed,
        "metrics": {
            name: {"value": value, "ci": list(ci[name]) if name in ci else None, "n_resamples": 1000}
            for name, value in metrics.items()
        },
        "chosen": None
        if backbone == "train_mean"
        else {"head": 3, "lr": 1e-3, "wd": 0.01, "val_metric": 0.5, "val_name": "mae"},
        "config_hash": "abc123",
        "created": created,
        "predictions_csv": predictions_csv,
        "probe_checkpoint": None,
        "extra": {},
    }


def record_path(store: Path, record: dict) -> Path:
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:8]
    folder = store / "records" / record["task"] / record["protocol"] / record["backbone"]
    return folder / f"{record['condition']}-seed{record['seed']}-{digest}.json"


def write_record(store: Path, record: dict) -> Path:
    path = record_path(store, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return path


def write_regression_csv(path: Path, n: int = 30, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    target = rng.uniform(25, 75, n)
    pred = target + rng.normal(0.5, 4.0, n)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["record_id", "patient", "target", "prediction"])
        for i in range(n):
            w.writerow([f"r{i}", f"p{i // 2}", f"{target[i]:.3f}", f"{pred[i]:.3f}"])


def write_class_csv(path: Path, n: int = 24, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["record_id", "patient", "target", "prediction", *(f"prob_{v}" for v in VIEWS)])
        for i in range(n):
            probs = rng.dirichlet(np.ones(len(VIEWS)))
            w.writerow(
                [f"r{i}", f"p{i}", VIEWS[i % 4], VIEWS[int(probs.argmax())], *(f"{p:.4f}" for p in probs)]
            )


def _with_csv(store: Path, record: dict, writer) -> dict:
    """Write the record's predictions CSV beside it (relative name, as the runner does)."""
    path = record_path(store, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.with_suffix(".csv").name
    writer(path.parent / name)
    record["predictions_csv"] = name
    return record


def full_store(store: Path, predictions: bool = True) -> Path:
    """Every cell of every table filled; the numbers of echomae/echojepa/echoprime follow the seed."""
    for k, backbone in enumerate(BACKBONES):
        base = 5.0 + k  # distinct, known MAEs for backbones without seed numbers
        lvef_internal = {"echomae": 8.15, "echojepa": 5.97}.get(backbone, base)
        view_acc = {"echomae": 0.404, "echojepa": 0.855}.get(backbone, 0.3 + 0.05 * k)
        rec = make_record(
            backbone,
            "lvef",
            "standard",
            "internal",
            {"mae": lvef_internal, "rmse": 7.0},
            ci={"mae": (lvef_internal - 0.3, lvef_internal + 0.3)},
        )
        if predictions:
            rec = _with_csv(store, rec, write_regression_csv)
        write_record(store, rec)
        write_record(store, make_record(backbone, "lvef", "standard", "external", {"mae": base + 1.0}))
        rec = make_record(
            backbone, "view", "standard", "internal", {"accuracy": view_acc, "balanced_accuracy": 0.4}
        )
        if predictions:
            rec = _with_csv(store, rec, write_class_csv)
        write_record(store, rec)
        for fraction, accs in (("0.01", [0.570, 0.576, 0.582]), ("0.1", [0.79, 0.80, 0.81]), ("1.0", [0.85])):
            for seed, acc in enumerate(accs):
                cond = f"fraction={fraction}"
                write_record(
                    store, make_record(backbone, "view", "sample_efficiency", cond, {"accuracy": acc}, seed)
                )
        rob = ECHOPRIME_ROBUSTNESS if backbone == "echoprime" else [base + 0.1 * i for i in range(7)]
        for condition, mae in zip(["original", *ROBUSTNESS], rob):
            write_record(store, make_record(backbone, "lvef", "robustness", condition, {"mae": mae}))
        for condition, mae in (("single_view", base + 0.5), ("multi_view", base + 0.2)):
            write_record(store, make_record(backbone, "rvsp", "standard", condition, {"mae": mae}))
        for condition, mae in (("zero_shot", base + 0.7), ("fine_tuned", base + 0.4)):
            write_record(store, make_record(backbone, "lvef", "pediatric_transfer", condition, {"mae": mae}))
    return store


# ---------------------------------------------------------------------------------------------------------
# A store for paired comparisons: every record's metrics are computed from its own predictions CSV.

PAIRED_KINDS = {"random_vit": "random", "echomae": "mae", "echojepa": "jepa"}
DEGRADATIONS = ["original", *ROBUSTNESS]


def _regression_record(store: Path, backbone: str, task: str, protocol: str, condition: str, rows, seed: int):
    """rows: (id, patient, target, prediction); the record's MAE/RMSE/R2 come from them."""
    pred = np.array([r[3] for r in rows])
    target = np.array([r[2] for r in rows])
    record = make_record(
        backbone,
        task,
        protocol,
        condition,
        regression_metrics(pred, target),
        seed,
        kind=PAIRED_KINDS[backbone],
    )
    return _write_with_rows(store, record, ["id", "patient", "target", "prediction"], rows)


def _write_with_rows(store: Path, record: dict, header: list[str], rows) -> dict:
    path = record_path(store, record).with_suffix(".predictions.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    record["predictions_csv"] = path.name
    write_record(store, record)
    return record


def _view_record(store: Path, backbone: str, protocol: str, condition: str, hit_rate: float, seed: int):
    rng = np.random.default_rng([seed, len(backbone), int(100 * hit_rate)])
    n = 40
    target = np.arange(n) % len(VIEWS)
    probs = rng.dirichlet(np.ones(len(VIEWS)), n)
    hit = rng.random(n) < hit_rate
    probs[hit, target[hit]] += 2.0  # a clear argmax on the true view for the hits
    probs /= probs.sum(axis=1, keepdims=True)
    metrics = {
        "accuracy": float(weighted_accuracy(probs, target)[0]),
        "balanced_accuracy": float(weighted_balanced_accuracy(probs, target)[0]),
    }
    record = make_record(backbone, "view", protocol, condition, metrics, seed, kind=PAIRED_KINDS[backbone])
    rows = [
        (f"c{i}", f"p{i // 2}", VIEWS[target[i]], VIEWS[int(probs[i].argmax())], *map(float, probs[i]))
        for i in range(n)
    ]
    header = ["id", "patient", "target", "prediction", *(f"prob_{v}" for v in VIEWS)]
    return _write_with_rows(store, record, header, rows)


def _rows(target: np.ndarray, pred: np.ndarray, prefix: str = "r", per_patient: int = 2) -> list[tuple]:
    return [
        (f"{prefix}{i}", f"p{i // per_patient}", float(t), float(y))
        for i, (t, y) in enumerate(zip(target, pred))
    ]


def paired_store(store: Path, spread: dict[str, float] | None = None, n: int = 40) -> Path:
    """random_vit (random), echomae (mae), echojepa (jepa) on the same test items, patients of two items
    each. Every item has a difficulty all models share (what pairing cancels); a backbone's own error is
    scaled by `spread` (default: echojepa clearly best). Degradation adds error that grows per condition,
    least for echojepa. RVSP: the multi-view probe scores all 20 studies, the single-view one only the 16
    with an A4C, and worse."""
    spread = spread or {"random_vit": 5.0, "echomae": 4.0, "echojepa": 0.5}
    rng = np.random.default_rng(0)
    target = rng.uniform(25, 75, n)
    shared = rng.normal(0, 3, n)  # item difficulty, the same for every model
    worsening = {"random_vit": 0.5, "echomae": 0.4, "echojepa": 0.05}
    for b, s in spread.items():
        own = np.random.default_rng(len(b)).normal(0, 1, n)
        pred = target + shared + s * own
        _regression_record(store, b, "lvef", "standard", "internal", _rows(target, pred), 0)
        for k, condition in enumerate(DEGRADATIONS):
            degraded = pred + worsening.get(b, 0.3) * k * s * np.abs(own)
            _regression_record(store, b, "lvef", "robustness", condition, _rows(target, degraded), 0)
        hit = 0.95 if b == "echojepa" else 0.3
        _view_record(store, b, "standard", "internal", hit, 0)
        for seed in (0, 1):
            _view_record(store, b, "sample_efficiency", "fraction=0.01", hit, seed)
        multi = _rows(target[:20], pred[:20], "s", 1)
        single = _rows(target[:16], pred[:16] + 2.0 * s * own[:16], "s", 1)
        _regression_record(store, b, "rvsp", "standard", "multi_view", multi, 0)
        _regression_record(store, b, "rvsp", "standard", "single_view", single, 0)
    return store
