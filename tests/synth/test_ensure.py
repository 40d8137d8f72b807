"""Pretraining's synthetic world: written when missing, rewritten when half-written, never into other data."""

import shutil
from pathlib import Path

import pytest

from echojepa.pretrain.data import ensure_synthetic
from echojepa.synth.ensure import WORLD_ENTRIES, NotASyntheticWorldError, ensure_world


def _data_cfg(world: Path) -> dict:
    return {"root": str(world / "echonet_dynamic"), "synth": {"preset": "tiny", "seed": 0}}


def test_world_entries_lists_everything_generate_writes_at_the_top(synth_world):
    assert {p.name for p in synth_world.iterdir()} <= WORLD_ENTRIES


def test_pretraining_regenerates_a_half_written_world(synth_world, tmp_path):
    world = tmp_path / "synth-tiny-s0"
    shutil.copytree(synth_world, world)
    (world / "manifest.json").unlink()  # a write killed before its last file
    video = sorted((world / "echonet_dynamic" / "Videos").iterdir())[0]
    video.write_bytes(video.read_bytes()[:100])  # ...and one video cut short
    ensure_synthetic(_data_cfg(world))
    assert (world / "manifest.json").is_file()
    original = synth_world / "echonet_dynamic" / "Videos" / video.name
    assert video.read_bytes() == original.read_bytes()


def test_a_complete_world_is_left_alone(synth_world, tmp_path, monkeypatch):
    world = tmp_path / "world"
    shutil.copytree(synth_world, world)
    monkeypatch.setattr("echojepa.synth.ensure.generate", lambda *a, **k: pytest.fail("rewrote it"))
    assert ensure_world(world, "tiny", 0) is False


def test_a_folder_of_other_data_is_never_written_into(tmp_path):
    (tmp_path / "my_study.csv").write_text("path,label\n")
    with pytest.raises(NotASyntheticWorldError, match="my_study.csv"):
        ensure_world(tmp_path, "tiny", 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_study.csv"]


@pytest.mark.parametrize(
    ("key", "value"), [("variation", "off"), ("generator", "echosynth-1.0"), ("seed", 1), ("preset", "demo")]
)
def test_a_world_written_otherwise_is_rewritten_as_configured(synth_world, tmp_path, monkeypatch, key, value):
    import json

    world = tmp_path / "world"
    shutil.copytree(synth_world, world)
    manifest = json.loads((world / "manifest.json").read_text())
    (world / "manifest.json").write_text(json.dumps({**manifest, key: value}))
    calls = []
    monkeypatch.setattr("echojepa.synth.ensure.generate", lambda *a, **k: calls.append((a, k)))
    assert ensure_world(world, "tiny", 0) is True
    assert calls == [((world, "tiny"), {"seed": 0})]
