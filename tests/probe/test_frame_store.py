"""The decoded-frame cache of the feature passes: a cached pass gives the uncached features to the bit
under the same key, a later backbone decodes nothing, passes that need a sector mask read the files, a
shrinking cache is part of the key, and a bad setting is one line."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import echojepa.io as eio
from echojepa.config import to_plain
from echojepa.confkeys import ConfigKeyError
from echojepa.data.clipcache import ClipCache
from echojepa.paths import CONF_DIR
from echojepa.probe.backbones import build_backbone
from echojepa.probe.errors import ProbeInputError
from echojepa.probe.feature_cache import FeatureCache
from echojepa.probe.frame_store import build_frame_cache
from echojepa.probe.taskdata import TaskData


def _cfg(*extra: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_plain(compose("evaluate", overrides=["task=lvef", "backbone=pixel_stats", *extra]))


def _data(world: Path, cache_dir: Path, frames: ClipCache | None, *backbone: str) -> TaskData:
    cfg = _cfg(*backbone)
    ds = {"format": "echonet_dynamic", "root": str(world / "echonet_dynamic"), "reader": {}}
    return TaskData(
        ds, cfg["task"], build_backbone(cfg["backbone"]), FeatureCache(cache_dir), progress=False,
        frame_cache=frames,
    )  # fmt: skip


def test_a_cached_pass_gives_the_uncached_features_to_the_bit_under_the_same_key(synth_world, tmp_path):
    plain = _data(synth_world, tmp_path / "plain", None).split("train")
    frames = ClipCache(tmp_path / "frames", None)
    cached = _data(synth_world, tmp_path / "cached", frames).split("train")
    assert cached.features.key == plain.features.key
    np.testing.assert_array_equal(np.asarray(cached.tokens), np.asarray(plain.tokens))
    assert list((tmp_path / "frames").rglob("*.npy"))  # the pass stored what it decoded


def test_a_later_backbone_reads_the_stored_frames_and_decodes_nothing(synth_world, tmp_path, monkeypatch):
    frames = ClipCache(tmp_path / "frames", None)
    _data(synth_world, tmp_path / "feats", frames).split("train")

    def no_decoding(*args, **kwargs):
        raise AssertionError("a video was decoded again")

    monkeypatch.setattr(eio, "read_video", no_decoding)
    other = _data(synth_world, tmp_path / "feats", frames, "backbone.grid=2").split("train")
    assert other.tokens.shape[0] == len(other.records)


def test_workers_start_only_for_passes_that_decode(synth_world, tmp_path):
    data = _data(synth_world, tmp_path / "feats", ClipCache(tmp_path / "frames", None))
    data.num_workers = 2
    records, _ = data.usable("test")
    assert data.decoding_workers(data.dataset(records, "center")) == 2  # nothing stored yet
    data.split("test")
    assert data.decoding_workers(data.dataset(records, "center")) == 0  # every video read from its entry
    assert data.decoding_workers(data.dataset(records, "center", degradation="shadow_low")) == 2


def test_passes_that_need_the_sector_mask_read_the_files(synth_world, tmp_path):
    data = _data(synth_world, tmp_path / "feats", ClipCache(tmp_path / "frames", None))
    records, _ = data.usable("test")
    assert data.dataset(records, "center").frame_cache is not None
    assert data.dataset(records, "center", degradation="shadow_low").frame_cache is None
    data.backbone.preprocess = replace(data.backbone.preprocess, sector_mask=True)
    assert data.dataset(records, "center").frame_cache is None


def test_a_cache_that_shrinks_frames_is_part_of_the_feature_key(synth_world, tmp_path):
    exact = _data(synth_world, tmp_path / "a", ClipCache(tmp_path / "f1", None)).split("test")
    shrunk = _data(synth_world, tmp_path / "b", ClipCache(tmp_path / "f2", 48)).split("test")
    assert shrunk.features.key != exact.features.key
    assert shrunk.features.meta["key_parts"]["frames"]["short_side"] == 48


def test_the_config_block_builds_the_cache_only_when_enabled_and_refuses_bad_settings(tmp_path):
    assert build_frame_cache(_cfg()["frame_cache"]) is None  # off by default
    on = _cfg("frame_cache.enabled=true", f"frame_cache.dir={tmp_path / 'frames'}")["frame_cache"]
    cache = build_frame_cache(on)
    assert isinstance(cache, ClipCache) and cache.short_side is None and cache.root == tmp_path / "frames"
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(ProbeInputError, match="frame_cache.dir"):
        build_frame_cache({**on, "dir": str(blocked / "frames")})
    with pytest.raises(ProbeInputError, match="short_side"):
        build_frame_cache({**on, "short_side": 0})
    with pytest.raises(ConfigKeyError, match="frame_cache"):
        build_frame_cache({**on, "short_sides": 64})
