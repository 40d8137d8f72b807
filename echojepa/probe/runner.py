"""One probe evaluation from a plain config: backbone -> cached features -> protocol -> results store.

Used by `echojepa-probe` (Hydra) and the demo pipeline (no Hydra).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from echojepa.precision import PRECISIONS
from echojepa.probe.backbones import build_backbone
from echojepa.probe.config import check_evaluate_keys
from echojepa.probe.context import Context
from echojepa.probe.errors import ProbeInputError
from echojepa.probe.feature_cache import FeatureCache
from echojepa.probe.frame_store import build_frame_cache
from echojepa.probe.protocols import PROTOCOLS
from echojepa.probe.task_settings import with_task_settings
from echojepa.probe.validation import validation_scores

log = logging.getLogger(__name__)


def ensure_task_world(cfg: dict[str, Any]) -> None:
    """Write the synthetic world the task's datasets point into when it is missing or half-written.

    A complete world is used as it is, whatever preset wrote it (a user may point `synth_root` at any
    world); only a stale one is reported, never rewritten here.
    """
    root = Path(cfg["synth_root"])
    uses = any(str(d["root"]).startswith(str(root)) for d in cfg["task"]["datasets"].values() if d)
    if not uses:
        return
    from echojepa.synth.ensure import MANIFEST, ensure_world, stale_reason

    if (root / MANIFEST).is_file():
        reason = stale_reason(root, cfg["synth"]["preset"], cfg["synth"]["seed"])
        if reason:
            log.warning("using the synthetic world at %s as it is (%s)", root, reason)
        return
    ensure_world(root, cfg["synth"]["preset"], cfg["synth"]["seed"])


def backbone_kind(cfg: dict[str, Any]) -> str:
    """The report's row category (jepa / mae / random / pixel_stats / trivial / other)."""
    b = cfg["backbone"]
    if b.get("category"):
        return b["category"]
    return {"random": "random", "pixel_stats": "pixel_stats"}.get(b["kind"], b["kind"])


def check_keys(cfg: dict[str, Any]) -> None:
    """Refuse a key no reader reads (a typo such as `probe.epoch`), one line, before anything is built."""
    unknown = check_evaluate_keys(cfg)
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ProbeInputError(f"{unknown[0]}: no such config key (not read by the probe run){more}")
    precision = str((cfg.get("probe") or {}).get("precision", "32-true"))
    if precision not in PRECISIONS:
        raise ProbeInputError(f"probe.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    features = str(cfg.get("feature_precision", "32-true"))
    if features not in PRECISIONS:
        raise ProbeInputError(f"feature_precision: {features!r} is not one of {', '.join(PRECISIONS)}")


def run_probe(cfg: dict[str, Any], progress: bool = True) -> list[Path]:
    """Run cfg["protocol"]["name"] for cfg["task"] on cfg["backbone"]; returns the records written."""
    check_keys(cfg)
    cfg = with_task_settings(cfg)  # the task's own epochs and grid, for every reader below
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
        frames=build_frame_cache(cfg.get("frame_cache")),
    )
    PROTOCOLS[name](ctx)
    stats = cache.stats()
    log.info("feature cache: %s", stats)
    if cfg.get("mlflow", {}).get("enabled"):
        log_to_mlflow(cfg, ctx.written, stats)
    return ctx.written


def validate_probe(cfg: dict[str, Any], progress: bool = False) -> list[dict[str, Any]]:
    """Train cfg["probe"] for cfg["task"] on cfg["backbone"] and score it on the VALIDATION split only
    (``echojepa.probe.validation``): what probe settings are chosen from. Writes no record, reads no
    test split."""
    check_keys(cfg)
    cfg = with_task_settings(cfg)
    ensure_task_world(cfg)
    ctx = Context(
        cfg=cfg,
        backbone=build_backbone(cfg["backbone"]),
        backbone_kind=backbone_kind(cfg),
        cache=FeatureCache(cfg["cache_dir"]),
        store=Path(cfg["store"]),
        progress=progress,
        frames=build_frame_cache(cfg.get("frame_cache")),
    )
    return validation_scores(ctx)


def log_to_mlflow(cfg: dict[str, Any], records: list[Path], cache_stats: dict[str, int]) -> None:
    """One parent run per evaluation (its settings, feature-cache counts) with one nested run per record.

    Every record's run uses the same metric keys (``test/mae``, ``val/mae``, ...; see
    echojepa.tracking.record_metrics) with backbone, task, protocol, condition and seed as params, so
    MLflow's compare view lines up runs of different backbones. Artifacts (the record and its
    predictions CSV) go beside a local tracking database; a Hydra multirun's sweep and job are tags.
    """
    import json

    from mlflow import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    from echojepa import tracking

    uri = cfg["mlflow"]["tracking_uri"]
    experiment = tracking.ensure_experiment(uri, cfg["mlflow"]["experiment_name"])
    client = MlflowClient(tracking_uri=uri)
    settings = {
        "probe_kind": cfg["probe"]["kind"], "probe_epochs": cfg["probe"]["epochs"],
        "probe_min_steps": cfg["probe"].get("min_steps") or 0,
        "probe_aug_views": cfg["probe"].get("aug_views") or 0,
        "probe_grid": json.dumps(cfg["probe"]["grid"])[:250],
    }  # fmt: skip
    tags = tracking.hydra_job_tags()
    task, protocol, seed = cfg["task"]["name"], cfg["protocol"]["name"], cfg.get("seed", 0)
    parent_params = {"backbone": cfg["backbone"]["name"], "backbone_kind": cfg["backbone"]["kind"],
                     "task": task, "protocol": protocol, "seed": seed, **settings}  # fmt: skip
    name = f"{task}-{protocol}-{cfg['backbone']['name']}-seed{seed}"
    with tracking.tracked_run(client, experiment, name, tags) as parent:
        cache = {f"cache/{k}": float(v) for k, v in cache_stats.items()}
        tracking.log_batch(client, parent, parent_params, cache)
        for path in records:
            rec = json.loads(path.read_text())
            child = "-".join(str(rec[k]) for k in ("task", "protocol", "backbone", "condition"))
            child_tags = {**tags, MLFLOW_PARENT_RUN_ID: parent, tracking.RECORD_TAG: str(path)}
            with tracking.tracked_run(client, experiment, f"{child}-seed{rec['seed']}", child_tags) as run:
                params = {**settings, **tracking.record_params(rec)}
                tracking.log_batch(client, run, params, tracking.record_metrics(rec))
                client.log_artifact(run, str(path), artifact_path="records")
                if rec.get("predictions_csv"):
                    client.log_artifact(run, str(path.parent / rec["predictions_csv"]), "predictions")
