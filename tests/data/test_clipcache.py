"""The decoded-video cache: entries hold the video shrunk, items never depend on whether an entry
existed, entries follow the file and the options, and a damaged entry is reported and rebuilt."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import echojepa.io as eio
from echojepa.data.clipcache import ClipCache, shrink_frames, stored_size
from echojepa.data.clips import ClipSpec
from echojepa.data.datasets import DatasetError
from echojepa.data.degrade import DepthAttenuation
from echojepa.data.index import Record
from echojepa.data.torchdata import VideoClipDataset
from echojepa.data.transforms import build_transform

SHORT = 8  # the tiny test videos are 16 x 16: entries store them at 8 x 8


@pytest.fixture(params=["avi", "dicom"])
def video(request, tmp_path: Path, avi, mimic_dicom) -> Path:
    """A 12-frame 16 x 16 video: MJPG AVI, or a JPEG (YBR_FULL_422) ultrasound DICOM."""
    if request.param == "avi":
        return avi(tmp_path / "v.avi", frames=12)
    return mimic_dicom(tmp_path / "v.dcm", frames=12)


def entry_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_entry_holds_every_frame_decoded_then_shrunk(video: Path, tmp_path: Path):
    cache = ClipCache(tmp_path / "cache", SHORT)
    entry = cache.open(video)
    decoded = eio.read_video(video)
    expected = shrink_frames(decoded.frames, stored_size(*decoded.frames.shape[1:3], SHORT))
    assert entry.frames.shape == expected.shape and entry.frames.shape[1:3] == (8, 8)
    np.testing.assert_array_equal(np.asarray(entry.frames), expected)
    assert entry.num_frames == 12 and entry.fps == pytest.approx(eio.video_info(video).fps)
    assert [p.suffix for p in entry_files(tmp_path / "cache")] == [".json", ".npy"]


def test_without_a_short_side_an_entry_holds_the_decoded_frames_unchanged(video: Path, tmp_path: Path):
    entry = ClipCache(tmp_path / "cache", None).open(video)
    np.testing.assert_array_equal(np.asarray(entry.frames), eio.read_video(video).frames)
    assert stored_size(600, 800, None) == (600, 800)


def test_frames_never_enlarged():
    assert stored_size(16, 24, 32) == (16, 24)
    assert stored_size(160, 224, 96) == (96, 134)


def item_videos(video: Path, cache: ClipCache | None) -> list[torch.Tensor]:
    spec = ClipSpec(frames=4, frame_step=2)
    t = build_transform(True, 8, (0.5,) * 3, (0.5,) * 3)
    rec = Record(path=video, split="train", patient="p", study="s", view="A4C", labels={})
    ds = VideoClipDataset([rec], spec, t, mode="random", seed=3, frame_cache=cache)
    return [ds[(0, epoch)]["video"] for epoch in range(3)]


def test_items_are_the_same_from_a_new_entry_an_existing_one_and_past_the_budget(video, tmp_path):
    cold = item_videos(video, ClipCache(tmp_path / "a", SHORT))  # entries built on first use
    warm = item_videos(video, ClipCache(tmp_path / "a", SHORT))  # read back from disk
    direct = item_videos(video, ClipCache(tmp_path / "b", SHORT, max_gb=0))  # nothing stored
    assert entry_files(tmp_path / "b") == []
    for a, b, c in zip(cold, warm, direct):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.equal(cold[0], cold[1])  # epochs still draw their own clips and crops


def test_entry_follows_the_file_and_the_stored_size(avi, tmp_path: Path):
    path = avi(tmp_path / "v.avi", frames=6)
    cache = ClipCache(tmp_path / "cache", SHORT)
    first = cache.key(cache.key_parts(path))
    cache.open(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a rewritten file: new mtime
    assert cache.key(cache.key_parts(path)) != first
    other = ClipCache(tmp_path / "cache", SHORT + 1)
    assert other.key(other.key_parts(path)) not in (first, cache.key(cache.key_parts(path)))
    assert other.open(path).frames.shape[1:3] == (9, 9)


def test_damaged_entry_is_reported_removed_and_rebuilt(video: Path, tmp_path: Path, caplog):
    cache = ClipCache(tmp_path / "cache", SHORT)
    good = np.asarray(cache.open(video).frames).copy()
    npy = next(p for p in entry_files(tmp_path / "cache") if p.suffix == ".npy")
    raw = bytearray(npy.read_bytes())
    raw[-5] ^= 0xFF  # one flipped pixel byte: shape and size still look right
    npy.write_bytes(bytes(raw))
    fresh = ClipCache(tmp_path / "cache", SHORT)  # a new process: nothing open yet
    with caplog.at_level(logging.WARNING, logger="echojepa.data.clipcache"):
        again = fresh.open(video)
    assert str(npy) in caplog.text and "crc32" in caplog.text
    np.testing.assert_array_equal(np.asarray(again.frames), good)
    assert np.load(npy)[-1, -1, -1, -1] == good[-1, -1, -1, -1]  # rewritten on disk


def test_truncated_frames_file_is_rebuilt(avi, tmp_path: Path, caplog):
    path = avi(tmp_path / "v.avi", frames=6)
    cache = ClipCache(tmp_path / "cache", SHORT)
    good = np.asarray(cache.open(path).frames).copy()
    npy = next(p for p in entry_files(tmp_path / "cache") if p.suffix == ".npy")
    npy.write_bytes(npy.read_bytes()[:-40])
    with caplog.at_level(logging.WARNING, logger="echojepa.data.clipcache"):
        again = ClipCache(tmp_path / "cache", SHORT).open(path)
    assert str(npy) in caplog.text
    np.testing.assert_array_equal(np.asarray(again.frames), good)


def test_failed_write_leaves_no_entry(avi, tmp_path: Path, monkeypatch):
    path = avi(tmp_path / "v.avi", frames=6)

    def broken_save(f, array, allow_pickle=False):
        f.write(b"\x93NUMPY half an array")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ClipCache(tmp_path / "cache", SHORT).open(path)
    assert entry_files(tmp_path / "cache") == []


def test_fill_builds_every_entry_once(avi, mimic_dicom, tmp_path: Path):
    paths = [avi(tmp_path / "a.avi", frames=5), mimic_dicom(tmp_path / "b.dcm", frames=5)]
    cache = ClipCache(tmp_path / "cache", SHORT)
    assert cache.fill(paths) == {"videos": 2, "cached": 2, "over_budget": 0}
    stamps = [p.stat().st_mtime_ns for p in entry_files(tmp_path / "cache")]
    assert len(stamps) == 4
    cache.fill(paths)
    assert [p.stat().st_mtime_ns for p in entry_files(tmp_path / "cache")] == stamps  # nothing rewritten


def test_cache_with_a_degradation_is_refused(avi, tmp_path: Path):
    rec = Record(path=avi(tmp_path / "v.avi"), split="train", patient="p", study="s", view="A4C", labels={})
    with pytest.raises(ValueError, match="sector mask"):
        VideoClipDataset(
            [rec],
            ClipSpec(frames=2, frame_step=1),
            None,
            degradation=DepthAttenuation(),
            frame_cache=ClipCache(tmp_path / "cache", SHORT),
        )


def test_a_cache_folder_that_cannot_be_written_is_refused_naming_it(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DatasetError, match=f"{blocker / 'cache'}: cannot create the clip cache folder"):
        ClipCache(blocker / "cache", SHORT)


def test_a_reading_only_view_reads_entries_stores_none_and_serves_the_same_pixels(video, tmp_path):
    stored = item_videos(video, ClipCache(tmp_path / "a", SHORT))  # builds the entry
    viewer = ClipCache(tmp_path / "b", SHORT).reading_only()
    direct = item_videos(video, viewer)  # a miss: decoded per item, nothing written
    assert entry_files(tmp_path / "b") == []
    for a, b in zip(stored, direct):
        assert torch.equal(a, b)
    from echojepa.data.clipcache import CachedVideo

    assert isinstance(ClipCache(tmp_path / "a", SHORT).reading_only().open(video), CachedVideo)  # a hit
