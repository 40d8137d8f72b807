"""The online probes' labelled subsets: seeded selection, only labelled cines, decoded like eval clips."""

from __future__ import annotations

import pytest
import torch

from echojepa.data.clips import ClipSpec
from echojepa.data.datasets import DatasetError, read_index
from echojepa.data.labelled_subset import load_clips, read_labelled_subset, select
from echojepa.data.torchdata import VideoClipDataset
from echojepa.data.transforms import CenterCrop, Compose, Resize

VIEWS = ["A4C", "A2C", "A3C", "A5C", "PLAX", "PSAX", "Subcostal"]


def test_the_subset_is_fixed_by_its_seed_and_drawn_from_the_named_split(synth_world):
    root = synth_world / "echonet_dynamic"
    a = select("echonet_dynamic", root, {}, "ef", {"train": 3, "val": 2}, seed=0)
    b = select("echonet_dynamic", root, {}, "ef", {"train": 3, "val": 2}, seed=0)
    c = select("echonet_dynamic", root, {}, "ef", {"train": 3, "val": 2}, seed=1)
    assert [r.path for r in a["train"]] == [r.path for r in b["train"]]
    assert [r.path for r in a["train"]] != [r.path for r in c["train"]]
    assert {r.split for r in a["train"]} == {"train"} and {r.split for r in a["val"]} == {"val"}
    assert len(a["train"]) == 3 and len(a["val"]) == 2


def test_only_cines_carrying_the_label_are_drawn_without_probing_the_whole_index(synth_world):
    root = synth_world / "mimic_iv_echo"
    # labels.csv gives every file of a study its EF, stills and Doppler spectra included: those must
    # be passed over, as the full (header-probing) reader would have excluded them
    picked = select("mimic", root, {}, "ef", {"train": 100}, seed=0)["train"]
    cines = [r.path for r in read_index("mimic", root).split("train") if "ef" in r.labels]
    assert sorted(r.path for r in picked) == sorted(cines)
    views = select("mimic", root, {}, "view", {"train": 100}, seed=0, classes=["A4C", "PSAX"])["train"]
    assert views and {r.view for r in views} <= {"A4C", "PSAX"}


def test_a_missing_root_or_an_unlabelled_split_is_refused_naming_the_root(synth_world, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        select("echonet_dynamic", tmp_path / "nope", {}, "ef", {"train": 2}, seed=0)
    with pytest.raises(DatasetError, match="no train clip carries the label 'rvsp'"):
        select("echonet_dynamic", synth_world / "echonet_dynamic", {}, "rvsp", {"train": 2}, seed=0)


def test_clips_are_the_eval_clips_of_the_data_pipeline_as_uint8(synth_world):
    root = synth_world / "mimic_iv_echo"
    spec = ClipSpec(frames=8, frame_step=2)
    subset = read_labelled_subset("mimic", root, {}, "view", {"train": 2}, 0, spec, 32, classes=VIEWS)
    train = subset["train"]
    assert train.video.shape == (2, 3, 8, 32, 32) and train.video.dtype == torch.uint8
    assert train.target.dtype == torch.long
    records = select("mimic", root, {}, "view", {"train": 2}, 0, VIEWS)["train"]
    reference = VideoClipDataset(records, spec, Compose([Resize(32), CenterCrop(32)]), mode="center")
    for i in range(2):
        expected = reference[i]["video"][0]  # [C, T, H, W] in 0-1
        assert (train.video[i].float() / 255 - expected).abs().max() <= 0.5 / 255 + 1e-6
        assert VIEWS[int(train.target[i])] == records[i].view
    assert torch.equal(load_clips(records, spec, 32), train.video)


def test_a_subset_is_kept_beside_the_clip_cache_read_back_without_decoding_and_rebuilt_when_damaged(
    synth_world, tmp_path, monkeypatch, caplog
):
    import logging

    import echojepa.io as eio
    from echojepa.data.clipcache import ClipCache

    root = synth_world / "echonet_dynamic"
    spec = ClipSpec(frames=8, frame_step=2)
    records = select("echonet_dynamic", root, {}, "ef", {"train": 3}, 0)["train"]
    direct = load_clips(records, spec, 32)
    cache = ClipCache(tmp_path / "cache", 48)
    first = load_clips(records, spec, 32, frame_cache=cache)
    files = sorted(p.relative_to(tmp_path / "cache").as_posix() for p in (tmp_path / "cache").rglob("*.*"))
    assert [f.split("/")[0] for f in files] == ["subsets", "subsets"]  # one subset, no whole videos
    # the cache's pixels (shrunk once, then resized) are close to a direct decode, not equal
    assert (first.float() - direct.float()).abs().mean() < 8

    real_read = eio.read_video
    monkeypatch.setattr(eio, "read_video", lambda *a, **k: pytest.fail("a stored subset was decoded"))
    assert torch.equal(load_clips(records, spec, 32, frame_cache=ClipCache(tmp_path / "cache", 48)), first)

    monkeypatch.setattr(eio, "read_video", real_read)
    npy = next((tmp_path / "cache" / "subsets").glob("*.npy"))
    raw = bytearray(npy.read_bytes())
    raw[-3] ^= 0xFF
    npy.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="echojepa.data.subset_store"):
        again = load_clips(records, spec, 32, frame_cache=ClipCache(tmp_path / "cache", 48))
    assert str(npy) in caplog.text and "crc32" in caplog.text
    assert torch.equal(again, first)
    load_clips(records, spec, 28, frame_cache=cache)  # another size is another subset
    assert len(list((tmp_path / "cache" / "subsets").glob("*.npy"))) == 2
