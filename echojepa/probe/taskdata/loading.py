"""The DataLoader of probe inputs: seeded shuffling and the single- or multi-view collate."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from echojepa.probe.taskdata.multi_view import collate_multi
from echojepa.probe.taskdata.single_view import collate_single


def loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int, multiview: bool = False) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=g if shuffle else None,
        collate_fn=collate_multi if multiview else collate_single,
    )
