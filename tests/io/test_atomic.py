import os
import stat

import pytest
import torch

from echojepa.io.atomic import atomic_torch_save, atomic_write, atomic_write_text


def test_failed_atomic_save_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "c.pt"
    atomic_torch_save({"a": torch.ones(2)}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises for a lambda
        atomic_torch_save({"a": lambda: 0}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_failed_write_callback_leaves_no_temp_and_no_target(tmp_path):
    def boom(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "x.bin", boom)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_published_file_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "sub" / "r.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert path.read_text() == "{}"


def test_text_replaces_existing_file_whole(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "néw")
    assert path.read_text(encoding="utf-8") == "néw"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
