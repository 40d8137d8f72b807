"""A tiny random-init ViT backbone (32 px, 4 frames), attentive probe banks trained for a couple of steps
on random tokens, and small synthetic cines. The view probe's bias is pushed towards one class so the
LVEF gate can be exercised both ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from echojepa.probe.backbones import load_backbone_config
from echojepa.probe.bank import HeadSpec, ProbeBank
from echojepa.probe.checkpoint import save_probe
from echojepa.probe.fit import train_probe_bank
from echojepa.probe.task import ProbeTask

VIEWS = ["A4C", "A2C", "A3C", "A5C", "PLAX", "PSAX", "Subcostal"]
IDENTIFIERS = {"PatientName": "Doe^Jane", "PatientID": "MRN123456"}
SECRETS = ("Doe^Jane", "Doe", "Jane", "MRN123456")
PRE = {"img_size": 32, "num_frames": 4, "frame_step": 2, "target_fps": None, "segments": 1,
       "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}  # fmt: skip
HEAD = {"depth": 2, "num_heads": 2}


def backbone_cfg() -> dict:
    return load_backbone_config("random_vit", preprocess=dict(PRE))


def trained_bank(embed_dim: int, task: ProbeTask, seed: int = 0) -> tuple[ProbeBank, ProbeTask]:
    bank = ProbeBank(
        "attentive", {"embed_dim": embed_dim, "out_dim": task.out_dim, **HEAD}, [HeadSpec(1e-3, 0.01)]
    )
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(2):
        tokens = torch.randn(4, 8, embed_dim, generator=g)
        target = (
            torch.randint(0, task.out_dim, (4,), generator=g)
            if task.kind == "classification"
            else 55.0 + 10.0 * torch.randn(4, generator=g)
        )
        batches.append({"tokens": tokens, "mask": None, "target": target})
    result = train_probe_bank(bank, batches, batches[:1], task, epochs=1)
    return bank, result.task


def write_probes(out: Path, backbone, favour: str, identity: str | None = None) -> dict[str, Path]:
    """A view probe whose bias makes `favour` the top class whatever the clip, and an LVEF probe."""
    identity = identity or backbone.identity()
    view, vtask = trained_bank(
        backbone.embed_dim, ProbeTask("classification", num_classes=7, class_names=VIEWS)
    )
    with torch.no_grad():
        view.heads[0].linear.bias[VIEWS.index(favour)] += 50.0
    lvef, ltask = trained_bank(backbone.embed_dim, ProbeTask("regression"), seed=1)
    paths = {"view": out / f"view_{favour}.pt", "lvef": out / "lvef.pt"}
    for (name, path), (bank, task) in zip(paths.items(), [(view, vtask), (lvef, ltask)]):
        meta = {"backbone": backbone.name, "backbone_identity": identity, "chosen_head": 0, "task": name}
        save_probe(path, bank, task, meta)
    return paths


def cine(frames: int = 20, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A bright disc that grows and shrinks over speckle: uint8 [T, H, W, 3]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    out = np.empty((frames, height, width), dtype=np.uint8)
    for t in range(frames):
        r = 8 + 6 * np.sin(2 * np.pi * t / 10)
        disc = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < r**2
        out[t] = np.clip(rng.rayleigh(40.0, (height, width)) + 150 * disc, 0, 255).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=-1)
