"""Turn a (plain, resolved) config into the objects of a pretraining run. No Hydra needed here."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from echojepa.confkeys import FREE, Dispatch, Kwargs, by_field, keys, parse, reads, register
from echojepa.masks import MultiBlockMask, TubeMask, parse_mask
from echojepa.models.predictor import Predictor
from echojepa.models.vit import VisionTransformer
from echojepa.precision import resolve_precision
from echojepa.pretrain.base import PretrainModule
from echojepa.pretrain.callbacks import AtomicCheckpointIO, DataPosition
from echojepa.pretrain.jepa import EchoJEPA
from echojepa.pretrain.mae import EchoMAE
from echojepa.schedules import ScheduleConfig

log = logging.getLogger(__name__)

OBJECTIVES = ("jepa", "mae")

# ----- the config groups a pretraining run reads (parsed here; conf/model, conf/objective, conf/logger,
# conf/trainer and the `checkpoint` block of train.yaml)
ENCODER_KEYS = Kwargs(VisionTransformer, exclude=("img_size", "num_frames"))  # those two: the preset's
PREDICTOR_KEYS = Kwargs(Predictor, exclude=("embed_dim",))  # the encoder's width


@reads("model")
@dataclass(frozen=True)
class ModelConfig:
    """conf/model/*.yaml: the encoder (VisionTransformer kwargs) and predictor (Predictor kwargs) of a run."""

    img_size: int
    num_frames: int
    encoder: dict = field(metadata=keys(ENCODER_KEYS))
    predictor: dict = field(metadata=keys(PREDICTOR_KEYS))
    name: str | None = None  # the run name and summary
    compile: bool = False
    # the one place the RoPE layout is set: encoder and predictor interpolate it (${..rope_repeat_layout})
    rope_repeat_layout: bool = False


@dataclass(frozen=True)
class OptimConfig:
    """AdamW settings (the LR comes from the schedule)."""

    weight_decay: float = 0.04
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


@dataclass(frozen=True)
class EmaConfig:
    """The EMA target's momentum: linear from start to end over ramp_steps."""

    start: float = 0.99925
    end: float = 0.99925
    ramp_steps: int = 0


@dataclass(frozen=True)
class JepaObjective:
    """conf/objective/jepa.yaml (its masks: the `mask` group, conf/mask/multiblock.yaml)."""

    name: str
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    monitor_every: int = 50
    official_quirks: bool = False


@dataclass(frozen=True)
class MaeObjective:
    """conf/objective/mae.yaml (its mask ratio: the `mask` group, conf/mask/tube.yaml)."""

    name: str
    decoder: dict = field(metadata=keys(PREDICTOR_KEYS))
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


OBJECTIVE_CLASSES: dict[str, type] = {"jepa": JepaObjective, "mae": MaeObjective}


_objective_class = by_field("objective", "name", OBJECTIVE_CLASSES)
OBJECTIVE_KEYS = Dispatch(_objective_class)
register("objective", OBJECTIVE_KEYS, f"{__name__}.parse_objective")


def parse_objective(raw: dict[str, Any]) -> JepaObjective | MaeObjective:
    """The `objective` group as its objective's dataclass (unknown keys refused)."""
    return parse(_objective_class(raw), raw, "objective")


@reads("logger")
@dataclass(frozen=True)
class LoggerConfig:
    """conf/logger/*.yaml: kind mlflow (experiment_name, tracking_uri), csv or none."""

    kind: str | None
    experiment_name: str | None = None
    tracking_uri: str | None = None


@reads("checkpoint")
@dataclass(frozen=True)
class CheckpointConfig:
    """train.yaml `checkpoint`: Lightning checkpoints under <run_dir>/checkpoints."""

    every_n_train_steps: int = 100
    keep_last: bool = True
    keep_all: bool = False


# The trainer group is Lightning's: every key is an L.Trainer argument, passed on as it is (a `strategy`
# mapping with `_target_` is built first, build_strategy); Lightning's signature is its reader.
TRAINER_KEYS = Kwargs(
    L.Trainer.__init__,
    exclude=("default_root_dir", "logger", "callbacks", "plugins", "enable_checkpointing"),  # set by code
    nested={"strategy": FREE},
)
register("trainer", TRAINER_KEYS, "lightning.Trainer (via echojepa.pretrain.build.build_trainer)")


def _asdict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def build_module(cfg: dict[str, Any]) -> PretrainModule:
    """cfg has `model` (encoder/predictor/img_size/num_frames), `objective`, `mask` and `seed`."""
    model = parse(ModelConfig, cfg["model"], "model")
    obj = parse_objective(cfg["objective"])
    mask = parse_mask(cfg["mask"])
    common = dict(
        encoder=dict(model.encoder),
        img_size=model.img_size,
        num_frames=model.num_frames,
        optim=_asdict(obj.optim),
        schedule=_asdict(obj.schedule),
        compile=model.compile,
        seed=cfg.get("seed", 0),
    )
    if isinstance(obj, JepaObjective):
        if not isinstance(mask, MultiBlockMask):
            raise ValueError(
                f"objective jepa draws multi-block masks (mask=multiblock); got mask kind {mask.kind!r}"
            )
        return EchoJEPA(
            predictor=dict(model.predictor),
            masks=[_asdict(g) for g in mask.groups],
            ema=_asdict(obj.ema),
            monitor_every=obj.monitor_every,
            official_quirks=obj.official_quirks,
            **common,
        )
    if not isinstance(mask, TubeMask):
        raise ValueError(f"objective mae draws tube masks (mask=tube); got mask kind {mask.kind!r}")
    return EchoMAE(decoder=dict(obj.decoder), mask_ratio=mask.ratio, **common)


def build_strategy(strategy: Any) -> Any:
    if isinstance(strategy, dict) and "_target_" in strategy:
        import importlib

        kwargs = {k: v for k, v in strategy.items() if k != "_target_"}
        module, _, name = strategy["_target_"].rpartition(".")
        return getattr(importlib.import_module(module), name)(**kwargs)
    return strategy


def build_logger(cfg: dict[str, Any], run_dir: Path, run_name: str) -> Any:
    logger = parse(LoggerConfig, cfg["logger"], "logger")
    kind = logger.kind
    if kind == "mlflow":
        from lightning.pytorch.loggers import MLFlowLogger

        from echojepa.tracking import ensure_experiment

        # the store and experiment exist (artifacts beside the database) before parallel runs log to it
        ensure_experiment(logger.tracking_uri, logger.experiment_name)
        return MLFlowLogger(
            experiment_name=logger.experiment_name,
            run_name=run_name,
            tracking_uri=logger.tracking_uri,
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
    # "auto": bf16-mixed where it pays (CUDA, a CPU with native bf16), float32 elsewhere (echojepa.precision)
    accelerator = str(tcfg.get("accelerator", "auto"))
    device_type = "cuda" if accelerator in ("gpu", "cuda") else "cpu"
    if accelerator == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    tcfg["precision"] = resolve_precision(str(tcfg.get("precision", "32-true")), device_type)
    ckpt = parse(CheckpointConfig, cfg.get("checkpoint") or {}, "checkpoint")
    callbacks = [
        ModelCheckpoint(
            dirpath=str(run_dir / "checkpoints"),
            filename="step{step:06d}",
            auto_insert_metric_name=False,
            every_n_train_steps=ckpt.every_n_train_steps,
            save_last=ckpt.keep_last,
            save_top_k=-1 if ckpt.keep_all else 1,
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
