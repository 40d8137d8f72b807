"""Turn a (plain, resolved) config into the objects of a pretraining run. No Hydra needed here."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from echojepa.pretrain.base import PretrainModule
from echojepa.pretrain.callbacks import AtomicCheckpointIO, DataPosition
from echojepa.pretrain.jepa import EchoJEPA
from echojepa.pretrain.mae import EchoMAE

log = logging.getLogger(__name__)

OBJECTIVES = ("jepa", "mae")


def build_module(cfg: dict[str, Any]) -> PretrainModule:
    """cfg has `model` (encoder/predictor/img_size/num_frames), `objective` and `seed`."""
    model, obj = cfg["model"], cfg["objective"]
    common = dict(
        encoder=model["encoder"],
        img_size=model["img_size"],
        num_frames=model["num_frames"],
        optim=obj.get("optim"),
        schedule=obj.get("schedule"),
        compile=model.get("compile", False),
        seed=cfg.get("seed", 0),
    )
    if obj["name"] == "jepa":
        return EchoJEPA(
            predictor=model["predictor"],
            masks=obj["masks"],
            ema=obj.get("ema"),
            monitor_every=obj.get("monitor_every", 50),
            official_quirks=obj.get("official_quirks", False),
            **common,
        )
    if obj["name"] == "mae":
        return EchoMAE(decoder=obj["decoder"], mask_ratio=obj["mask_ratio"], **common)
    raise ValueError(f"unknown objective {obj['name']!r}; valid: {', '.join(OBJECTIVES)}")


def build_strategy(strategy: Any) -> Any:
    if isinstance(strategy, dict) and "_target_" in strategy:
        import importlib

        kwargs = {k: v for k, v in strategy.items() if k != "_target_"}
        module, _, name = strategy["_target_"].rpartition(".")
        return getattr(importlib.import_module(module), name)(**kwargs)
    return strategy


def build_logger(cfg: dict[str, Any], run_dir: Path, run_name: str) -> Any:
    kind = cfg["logger"]["kind"]
    if kind == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger

        from echojepa.tracking import ensure_experiment

        # the store and experiment exist (artifacts beside the database) before parallel runs log to it
        ensure_experiment(cfg["logger"]["tracking_uri"], cfg["logger"]["experiment_name"])
        return MLFlowLogger(
            experiment_name=cfg["logger"]["experiment_name"],
            run_name=run_name,
            tracking_uri=cfg["logger"]["tracking_uri"],
        )
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(run_dir), name="csv")
    if kind in ("none", None):
        return False
    raise ValueError(f"unknown logger kind {kind!r}; valid: mlflow, csv, none")


def build_trainer(
    cfg: dict[str, Any], run_dir: Path, logger: Any, extra_callbacks: list | None = None
) -> L.Trainer:
    tcfg = dict(cfg["trainer"])
    tcfg["strategy"] = build_strategy(tcfg.get("strategy", "auto"))
    ckpt = cfg.get("checkpoint", {})
    callbacks = [
        ModelCheckpoint(
            dirpath=str(run_dir / "checkpoints"),
            filename="step{step:06d}",
            auto_insert_metric_name=False,
            every_n_train_steps=ckpt.get("every_n_train_steps", 100),
            save_last=ckpt.get("keep_last", True),
            save_top_k=-1 if ckpt.get("keep_all", False) else 1,
            monitor=None,
        ),
        DataPosition(),
        *(extra_callbacks or []),
    ]
    if tcfg.pop("enable_progress_bar", True):
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
        tcfg["enable_progress_bar"] = True
    else:
        tcfg["enable_progress_bar"] = False
    return L.Trainer(
        default_root_dir=str(run_dir),
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=True,
        **tcfg,
    )
