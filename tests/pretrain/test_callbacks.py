import pickle
from pathlib import Path

import pytest
import torch
from lightning.pytorch.strategies import ModelParallelStrategy

from echojepa.pretrain.callbacks import (
    AtomicCheckpointIO,
    AtomicModelParallelStrategy,
    checkpoint_problem,
    publish_folder,
)


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)

    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise KeyboardInterrupt("killed during the write")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert io.load_checkpoint(path)["step"].item() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no stray temp files


class Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_loading_never_unpickles_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        torch.save({"state_dict": {}, "payload": Evil()}, f, pickle_module=pickle)
    with pytest.raises(pickle.UnpicklingError):
        AtomicCheckpointIO().load_checkpoint(path)
    with pytest.raises(ValueError, match="non-weights-only"):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)


# ----- FSDP2 sharded checkpoints (folders): written aside, swapped in whole --------------------------


def _fake_sharded_save(tag: str, die_after_first_shard: bool = False):
    """Stands in for Lightning's sharded write: shards first, meta.pt last (as ModelParallelStrategy)."""

    def save(self, checkpoint, filepath, storage_options=None):
        folder = Path(filepath)
        folder.mkdir(parents=True, exist_ok=True)
        for rank in range(2):
            (folder / f"__{rank}_0.distcp").write_text(tag)
            if die_after_first_shard:
                raise KeyboardInterrupt("killed during the write")
        (folder / ".metadata").write_text(tag)
        torch.save({"pytorch-lightning_version": "2.6.0", "tag": tag}, folder / "meta.pt")

    return save


def _single_rank_strategy(monkeypatch) -> AtomicModelParallelStrategy:
    strategy = AtomicModelParallelStrategy(data_parallel_size=1, tensor_parallel_size=1)
    monkeypatch.setattr(strategy, "broadcast", lambda obj, src=0: obj)
    monkeypatch.setattr(strategy, "barrier", lambda *args, **kwargs: None)
    return strategy


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_sharded_save_killed_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    strategy = _single_rank_strategy(monkeypatch)
    last = tmp_path / "last.ckpt"
    monkeypatch.setattr(ModelParallelStrategy, "save_checkpoint", _fake_sharded_save("step2"))
    strategy.save_checkpoint({}, last)
    before = _contents(last)
    assert checkpoint_problem(last) is None

    monkeypatch.setattr(ModelParallelStrategy, "save_checkpoint", _fake_sharded_save("step4", True))
    with pytest.raises(KeyboardInterrupt):
        strategy.save_checkpoint({}, last)
    assert _contents(last) == before  # not one new shard beside the old metadata

    monkeypatch.setattr(ModelParallelStrategy, "save_checkpoint", _fake_sharded_save("step4"))
    strategy.save_checkpoint({}, last)  # the next save clears the killed write's leftovers
    assert (last / "__1_0.distcp").read_text() == "step4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_a_run_killed_between_the_renames_names_the_complete_previous_checkpoint(tmp_path):
    aside = tmp_path / ".last.ckpt.old"
    aside.mkdir()
    problem = checkpoint_problem(tmp_path / "last.ckpt")
    assert problem is not None and str(aside) in problem


def test_publish_folder_replaces_a_folder_or_a_file(tmp_path):
    for old in ("folder", "file"):
        target = tmp_path / old / "last.ckpt"
        target.parent.mkdir()
        if old == "folder":
            target.mkdir()
            (target / "stale.distcp").write_text("old")
        else:
            target.write_text("old single-file checkpoint")
        staging = tmp_path / old / ".last.ckpt.partial"
        staging.mkdir()
        (staging / "meta.pt").write_text("new")
        publish_folder(staging, target)
        assert _contents(target) == {"meta.pt": b"new"}
        assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]
