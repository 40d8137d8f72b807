"""Multi-view probe inputs: a split's records grouped into studies with one slot per view, each study
read as V views x C contiguous clips with slot presence, and their collate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from echojepa.probe.taskdata.splits import SplitData


@dataclass
class ExamViews:
    study: str
    patient: str
    target: float
    slots: list[
        tuple[int, int] | None
    ]  # per view: (item index in the split's cache, number of clips) or None


def studies(data: SplitData, views: Sequence[str], label: str) -> list[ExamViews]:
    """Group a split's records into studies with one slot per listed view (first file of that view)."""
    by_study: dict[str, ExamViews] = {}
    for i, r in enumerate(data.records):
        s = by_study.get(r.study)
        if s is None:
            s = by_study[r.study] = ExamViews(r.study, r.patient, float(r.labels[label]), [None] * len(views))
        v = views.index(r.view)
        if s.slots[v] is None:
            s.slots[v] = (i, int(data.num_clips[i]))
    return [s for _, s in sorted(by_study.items())]


class MultiViewInputs(Dataset):
    """ExamViews -> tokens [V*C, N, D] (C contiguous clips per view from frame 0) and slot presence [V*C]."""

    def __init__(self, data: SplitData, rows: list[ExamViews], clips: int) -> None:
        self.data, self.rows, self.clips = data, rows, clips

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, j: int) -> dict[str, Any]:
        s = self.rows[j]
        n, d = self.data.tokens.shape[2:]
        tokens = torch.zeros(len(s.slots) * self.clips, n, d)
        presence = torch.zeros(len(s.slots) * self.clips, dtype=torch.bool)
        for v, slot in enumerate(s.slots):
            if slot is None:
                continue
            item, have = slot
            for c in range(min(self.clips, have)):
                tokens[v * self.clips + c] = self.data.clip_tokens(item, c)
                presence[v * self.clips + c] = True
        return {"tokens": tokens, "presence": presence, "target": s.target, "item": j}


def collate_multi(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "tokens": torch.stack([b["tokens"] for b in batch]),
        "presence": torch.stack([b["presence"] for b in batch]),
        "target": torch.tensor([b["target"] for b in batch]),
        "item": torch.tensor([b["item"] for b in batch]),
    }
