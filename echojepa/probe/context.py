"""What a probe protocol runs with: the config, the backbone, the feature cache and the results store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from echojepa.data.clipcache import ClipCache
from echojepa.precision import resolve_precision
from echojepa.probe.backbone_base import Backbone
from echojepa.probe.feature_cache import FeatureCache
from echojepa.probe.taskdata import TaskData


@dataclass
class Context:
    """Everything a protocol needs; built by the runner from the config."""

    cfg: dict[str, Any]
    backbone: Backbone
    backbone_kind: str  # the report's row category: jepa / mae / random / pixel_stats / ...
    cache: FeatureCache
    store: Path
    progress: bool = True
    frames: ClipCache | None = None  # decoded videos shared by the feature passes (probe/frame_store.py)
    written: list[Path] = field(default_factory=list)
    # fixed token projections fit in this run, by (train cache entry key, width): fit once per entry
    projections: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def task(self) -> dict[str, Any]:
        return self.cfg["task"]

    @property
    def probe(self) -> dict[str, Any]:
        return self.cfg["probe"]

    def data(self, which: str) -> TaskData:
        ds = self.task["datasets"].get(which)
        if ds is None:
            raise ValueError(f"task {self.task['name']} has no {which!r} dataset")
        return TaskData(
            ds,
            self.task,
            self.backbone,
            self.cache,
            self.cfg.get("batch_size", 16),
            self.cfg.get("device", "cpu"),
            self.cfg.get("num_workers", 0),
            self.cfg.get("feature_seed", 0),
            self.progress,
            frame_cache=self.frames,
            feature_precision=self.feature_precision,
        )

    @property
    def feature_precision(self) -> str:
        """The precision feature passes run in, resolved for the device ("auto" -> what pays there);
        float32 for a backbone whose forward reduced precision does not change (pixel statistics)."""
        if not self.backbone.reduced_precision_forward:
            return "32-true"
        device = torch.device(self.cfg.get("device", "cpu")).type
        return resolve_precision(str(self.cfg.get("feature_precision", "32-true")), device)
