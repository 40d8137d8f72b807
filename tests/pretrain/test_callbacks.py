import pickle

import pytest
import torch

from echojepa.pretrain.callbacks import AtomicCheckpointIO


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
