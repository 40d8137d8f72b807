"""Small builders shared by the pretraining tests (tiny CPU configs on the EchoSynth tiny world)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import OmegaConf

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR

MASK_OF = {"jepa": "multiblock", "mae": "tube"}  # conf/mask/jepa.yaml, conf/mask/mae.yaml


def tiny_cfg(objective: str, world: Path, **overrides: Any) -> dict:
    """cpu_tiny at 32 px / 8 frames on the synthetic EchoNet-Dynamic AVIs: a step takes milliseconds."""
    cfg = OmegaConf.create(
        {
            "model": OmegaConf.load(CONF_DIR / "model" / "cpu_tiny.yaml"),
            "objective": OmegaConf.load(CONF_DIR / "objective" / f"{objective}.yaml"),
            # the objective's mask, as train.yaml's `mask: ${objective}` picks it
            "mask": OmegaConf.load(CONF_DIR / "mask" / f"{MASK_OF[objective]}.yaml"),
            "seed": 0,
            "data": {
                "format": "echonet_dynamic",
                "root": str(world / "echonet_dynamic"),
                "clip": {"frames": 8, "frame_step": 1, "target_fps": None},
                "img_size": 32,
                "batch_size": 2,
                "num_workers": 0,
                "splits": ["train"],
                "synth": None,
            },
        }
    )
    cfg.model.img_size = 32
    cfg.model.num_frames = 8
    cfg.model.encoder.patch_size = 8
    cfg.objective.schedule.warmup_steps = 3
    cfg.objective.schedule.lr = 2e-3
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    return to_plain(cfg)


def fixed_batch_loss(module, video) -> float:
    """The objective on one fixed batch with fixed masks (the run's mask state is left untouched)."""
    import torch

    state = module.mask_generator.state_dict()
    module.mask_generator.load_state_dict({"seed": 1234, "step": 0})
    with torch.no_grad():
        loss = (module.jepa_loss(video) if hasattr(module, "jepa_loss") else module.mae_loss(video))[0]
    module.mask_generator.load_state_dict(state)
    return float(loss)


class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def trainer(max_steps: int, tmp_path: Path, callbacks: list | None = None, **kwargs: Any) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=callbacks or [],
        **kwargs,
    )
