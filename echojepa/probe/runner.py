"""One probe evaluation from a plain config: backbone -> cached features -> protocol -> results store.

Used by `echojepa-probe` (Hydra) and the demo pipeline (no Hydra).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from echojepa.probe.backbones import build_backbone
from echojepa.probe.features import FeatureCache
from echojepa.probe.protocols import PROTOCOLS, Context

log = logging.getLogger(__name__)


def ensure_task_world(cfg: dict[str, Any]) -> None:
    """Write (or rewrite, when half-written or stale) the synthetic world the task's datasets point into."""
    root = Path(cfg["synth_root"])
    uses = any(str(d["root"]).startswith(str(root)) for d in cfg["task"]["datasets"].values() if d)
    if uses:
        from echojepa.synth.ensure import ensure_world

        ensure_world(root, cfg["synth"]["preset"], cfg["synth"]["seed"])


def backbone_kind(cfg: dict[str, Any]) -> str:
    """The report's row category (jepa / mae / random / pixel_stats / trivial / other)."""
    b = cfg["backbone"]
    if b.get("category"):
        return b["category"]
    return {"random": "random", "pixel_stats": "pixel_stats"}.get(b["kind"], b["kind"])


def run_probe(cfg: dict[str, Any], progress: bool = True) -> list[Path]:
    """Run cfg["protocol"]["name"] for cfg["task"] on cfg["backbone"]; returns the records written."""
    name = cfg["protocol"]["name"]
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)}")
    ensure_task_world(cfg)
    backbone = build_backbone(cfg["backbone"])
    cache = FeatureCache(cfg["cache_dir"])
    ctx = Context(
        cfg=cfg,
        backbone=backbone,
        backbone_kind=backbone_kind(cfg),
        cache=cache,
        store=Path(cfg["store"]),
        progress=progress,
    )
    PROTOCOLS[name](ctx)
    stats = cache.stats()
    log.info("feature cache: %s", stats)
    if cfg.get("mlflow", {}).get("enabled"):
        log_to_mlflow(cfg, ctx.written, stats)
    return ctx.written


def log_to_mlflow(cfg: dict[str, Any], records: list[Path], cache_stats: dict[str, int]) -> None:
    import json

    import mlflow

    from echojepa.tracking import ensure_tracking_store

    ensure_tracking_store(cfg["mlflow"]["tracking_uri"])  # parallel runs on a fresh SQLite store
    mlflow.set_tracking_uri(cfg["mlflow"]["tracking_uri"])
    mlflow.set_experiment(cfg["mlflow"]["experiment_name"])
    run_name = (
        f"{cfg['task']['name']}-{cfg['protocol']['name']}-{cfg['backbone']['name']}-seed{cfg.get('seed', 0)}"
    )
    with mlflow.start_run(run_name=run_name):
        mlflow.log_params({
            "backbone": cfg["backbone"]["name"], "backbone_kind": cfg["backbone"]["kind"],
            "task": cfg["task"]["name"], "protocol": cfg["protocol"]["name"], "seed": cfg.get("seed", 0),
            "probe_kind": cfg["probe"]["kind"], "probe_epochs": cfg["probe"]["epochs"],
            "probe_min_steps": cfg["probe"].get("min_steps") or 0,
            "probe_aug_views": cfg["probe"].get("aug_views") or 0,
            "probe_grid": json.dumps(cfg["probe"]["grid"])[:250],
        })  # fmt: skip
        mlflow.log_metrics({f"cache.{k}": float(v) for k, v in cache_stats.items()})
        for path in records:
            rec = json.loads(path.read_text())
            condition = rec["condition"].replace("=", "_")  # MLflow metric names allow no '='
            prefix = f"{rec['backbone']}.{condition}.seed{rec['seed']}"
            mlflow.log_metrics(
                {
                    f"{prefix}.{m}": v["value"]
                    for m, v in rec["metrics"].items()
                    if isinstance(v, dict) and isinstance(v.get("value"), float)
                }
            )
            mlflow.log_artifact(str(path), artifact_path="records")
            if rec.get("predictions_csv"):
                mlflow.log_artifact(str(path.parent / rec["predictions_csv"]), artifact_path="predictions")
