"""Probe inputs from cached features: a small split read into memory once gives exactly the items the
memory map gives, and a batch without padding carries no mask."""

from pathlib import Path

import numpy as np
import pytest
import torch

from echojepa.probe.feature_cache import CachedFeatures
from echojepa.probe.taskdata import (
    ExamViews,
    MultiViewInputs,
    SingleViewInputs,
    SplitData,
    collate_single,
    splits,
)

CLIPS = [3, 1, 2, 3, 3]


def _split(tmp_path: Path) -> SplitData:
    tokens = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float16, shape=(5, 3, 4, 2))
    tokens[:] = np.random.default_rng(0).normal(size=tokens.shape)
    tokens.flush()
    rows = [{"path": f"v{i}.avi", "num_clips": c} for i, c in enumerate(CLIPS)]
    features = CachedFeatures("k", tmp_path, np.load(tmp_path / "f.npy", mmap_mode="r"), rows, {})
    return SplitData(features, records=[])


@pytest.mark.parametrize("groups", [None, [(0, [0, 1]), (2, [1, 1]), (4, [2])]])
def test_a_split_read_into_memory_gives_the_items_of_the_memory_map(tmp_path, monkeypatch, groups):
    target = np.arange(5.0)
    dense = SingleViewInputs(_split(tmp_path), target, groups)
    items = [dense[j] for j in range(len(dense))]
    assert dense.data._dense is not None  # read once, on first use
    monkeypatch.setattr(splits, "DENSE_SPLIT_BYTES", 0)  # every split too big: read per item
    mapped = SingleViewInputs(_split(tmp_path), target, groups)
    for j, a in enumerate(items):
        b = mapped[j]
        assert torch.equal(a["tokens"], b["tokens"]) and a["tokens"].dtype == torch.float32
        assert (a["item"], a["target"]) == (b["item"], b["target"])
    assert mapped.data._dense is None


def test_a_batch_pads_only_when_items_differ_in_clips(tmp_path):
    ds = SingleViewInputs(_split(tmp_path), np.arange(5.0))
    same = collate_single([ds[0], ds[3]])
    assert same["mask"] is None and same["tokens"].shape == (2, 12, 2)
    mixed = collate_single([ds[0], ds[1]])
    assert mixed["tokens"].shape == (2, 12, 2)
    assert mixed["mask"][1].tolist() == [False] * 4 + [True] * 8 and not mixed["mask"][0].any()
    assert torch.equal(mixed["tokens"][1, 4:], torch.zeros(8, 2))


def test_multi_view_inputs_read_into_memory_equal_the_memory_map(tmp_path, monkeypatch):
    rows = [
        ExamViews("s0", "p0", 30.0, [(0, 3), (1, 1)]),
        ExamViews("s1", "p1", 40.0, [None, (2, 2)]),  # a study without its first view
    ]
    dense = MultiViewInputs(_split(tmp_path), rows, clips=2)
    items = [dense[j] for j in range(2)]
    monkeypatch.setattr(splits, "DENSE_SPLIT_BYTES", 0)
    mapped = MultiViewInputs(_split(tmp_path), rows, clips=2)
    assert dense.data._dense is not None
    for j, a in enumerate(items):
        b = mapped[j]
        assert torch.equal(a["tokens"], b["tokens"]) and torch.equal(a["presence"], b["presence"])
    assert mapped.data._dense is None
    assert items[1]["presence"].tolist() == [False, False, True, True]
