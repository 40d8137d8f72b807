"""Single-view probe inputs: each item's clip tokens concatenated (one input per item, or per run of
clips at test time "all clips") and the collate that pads items with fewer clips.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from echojepa.probe.taskdata.splits import SplitData


class SingleViewInputs(Dataset):
    """Item i -> the tokens of its S clips concatenated ([S*N, D]; padded clips masked) and its target.

    `groups` (test-time "all clips"): a list of (item, clip indices) pairs; each pair is one probe input
    and predictions are averaged per item afterwards."""

    def __init__(
        self, data: SplitData, target: np.ndarray, groups: list[tuple[int, list[int]]] | None = None
    ) -> None:
        self.data, self.target = data, target
        self.groups = groups or [(i, list(range(int(data.num_clips[i])))) for i in range(len(target))]

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, j: int) -> dict[str, Any]:
        i, clips = self.groups[j]
        tokens = self.data.clip_tokens(i, clips)  # [S, N, D]
        return {"tokens": tokens.flatten(0, 1), "item": i, "target": self.target[i]}


def all_clip_groups(num_clips: np.ndarray, segments: int) -> list[tuple[int, list[int]]]:
    """Every run of `segments` consecutive windows of every item (one window when segments == 1)."""
    groups = []
    for i, w in enumerate(num_clips.tolist()):
        w = int(w)
        if w <= segments:
            groups.append((i, [min(k, w - 1) for k in range(segments)]))
        else:
            groups.extend((i, list(range(s, s + segments))) for s in range(w - segments + 1))
    return groups


def collate_single(batch: list[dict[str, Any]]) -> dict[str, Any]:
    lengths = [b["tokens"].shape[0] for b in batch]
    n = max(lengths)
    if min(lengths) == n:  # no padding (every item the same number of clips): one stack
        tokens, mask = torch.stack([b["tokens"] for b in batch]), None
    else:
        tokens = torch.zeros(len(batch), n, batch[0]["tokens"].shape[1])
        mask = torch.ones(len(batch), n, dtype=torch.bool)  # True = padding
        for k, b in enumerate(batch):
            tokens[k, : b["tokens"].shape[0]] = b["tokens"]
            mask[k, : b["tokens"].shape[0]] = False
    return {
        "tokens": tokens,
        "mask": mask,
        "target": torch.as_tensor(np.array([b["target"] for b in batch])),
        "item": torch.tensor([b["item"] for b in batch]),
    }
