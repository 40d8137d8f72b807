"""What a probe learns: its loss, target normalisation, predictions and validation metric."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch.nn.functional as F
from torch import Tensor

_METRICS_HIGHER_IS_BETTER = {"mae": False, "rmse": False, "accuracy": True, "balanced_accuracy": True}


@dataclass
class ProbeTask:
    """``regression``: targets z-scored with the train split's ``target_mean``/``target_std``; SmoothL1 on z.
    ``classification``: cross-entropy over ``num_classes``."""

    kind: str
    num_classes: int | None = None
    target_mean: float | None = None
    target_std: float | None = None
    val_metric: str | None = None  # default: mae (regression), balanced_accuracy (classification)
    smooth_l1_beta: float = 1.0
    class_names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("regression", "classification"):
            raise ValueError(f"task kind must be 'regression' or 'classification', got {self.kind!r}")
        if self.kind == "classification" and (self.num_classes is None or self.num_classes < 2):
            raise ValueError(f"classification needs num_classes >= 2, got {self.num_classes}")
        if self.val_metric is None:
            self.val_metric = "mae" if self.kind == "regression" else "balanced_accuracy"
        allowed = ("mae", "rmse") if self.kind == "regression" else ("accuracy", "balanced_accuracy")
        if self.val_metric not in allowed:
            raise ValueError(f"val_metric {self.val_metric!r} does not fit {self.kind}; valid: {allowed}")
        if self.target_std is not None and not self.target_std > 0:
            raise ValueError(f"target_std must be > 0, got {self.target_std}")

    @property
    def out_dim(self) -> int:
        return 1 if self.kind == "regression" else int(self.num_classes)

    @property
    def higher_is_better(self) -> bool:
        return _METRICS_HIGHER_IS_BETTER[self.val_metric]

    @property
    def normalised(self) -> bool:
        return self.kind != "regression" or (self.target_mean is not None and self.target_std is not None)

    def with_train_targets(self, targets: np.ndarray | Tensor) -> ProbeTask:
        """A copy whose z-scoring uses these (train split) targets."""
        t = np.asarray(targets, dtype=np.float64)
        if t.size < 2:
            raise ValueError(f"need >= 2 train targets to z-score, got {t.size}")
        std = float(t.std(ddof=1))
        if not std > 0:
            raise ValueError("train targets have zero spread: cannot z-score")
        return ProbeTask(**{**asdict(self), "target_mean": float(t.mean()), "target_std": std})

    def _require_stats(self) -> None:
        if not self.normalised:
            raise ValueError("regression task has no target_mean/target_std: fit them on the train split")

    def normalise(self, target: Tensor) -> Tensor:
        self._require_stats()
        return (target.float() - self.target_mean) / self.target_std

    def denormalise(self, z: Tensor) -> Tensor:
        self._require_stats()
        return z * self.target_std + self.target_mean

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        """outputs [K, B, out], target [B] -> per-head mean loss [K]."""
        k, b = outputs.shape[:2]
        if self.kind == "regression":
            z = self.normalise(target).to(outputs.dtype)  # [B]
            per = F.smooth_l1_loss(
                outputs[..., 0], z.expand(k, b), reduction="none", beta=self.smooth_l1_beta
            )
            return per.mean(dim=1)
        per = F.cross_entropy(outputs.reshape(k * b, -1), target.long().repeat(k), reduction="none")
        return per.view(k, b).mean(dim=1)

    def predictions(self, outputs: Tensor) -> Tensor:
        """[K, B, out] -> real units [K, B] (regression) or class probabilities [K, B, C]."""
        if self.kind == "regression":
            return self.denormalise(outputs[..., 0].float())
        return outputs.float().softmax(dim=-1)

    def score(self, predictions: np.ndarray, target: np.ndarray) -> float:
        """Validation metric of one head's predictions."""
        if self.val_metric == "mae":
            return float(np.mean(np.abs(predictions - target)))
        if self.val_metric == "rmse":
            return float(np.sqrt(np.mean((predictions - target) ** 2)))
        pred = predictions.argmax(axis=-1)
        target = target.astype(np.int64)
        if self.val_metric == "accuracy":
            return float(np.mean(pred == target))
        recalls = [np.mean(pred[target == c] == c) for c in np.unique(target)]
        return float(np.mean(recalls))
