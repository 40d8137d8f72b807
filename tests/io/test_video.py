from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pytest

from echojepa.io import NotACineError, VideoReadError, read_video, video_info, write_video


def smooth_cine(frames: int = 16, height: int = 64, width: int = 80, colour: bool = False) -> np.ndarray:
    """Smooth moving pattern (codec friendly, so round-trip errors stay small)."""
    yy, xx = np.mgrid[:height, :width]
    grey = np.stack(
        [128 + 60 * np.sin(xx / 7 + t / 3) + 40 * np.cos(yy / 5 - t / 4) for t in range(frames)]
    ).astype(np.uint8)  # [T, H, W]
    if not colour:
        return grey
    return np.stack([grey, 255 - grey, np.roll(grey, 5, axis=2)], axis=-1)  # [T, H, W, 3]


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_greyscale_round_trip_is_close_and_replicated_to_rgb(tmp_path, suffix):
    src = smooth_cine()
    path = tmp_path / f"v{suffix}"
    write_video(path, src, fps=50.0)
    video = read_video(path)
    assert video.frames.shape == (16, 64, 80, 3) and video.frames.dtype == np.uint8
    assert np.array_equal(video.frames[..., 0], video.frames[..., 1])
    err = np.abs(video.frames[..., 0].astype(int) - src)
    assert err.mean() < 2.0 and err.max() <= 12
    assert video.frame_indices.tolist() == list(range(16))


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_colour_round_trip_keeps_channels_apart(tmp_path, suffix):
    src = smooth_cine(colour=True)
    path = tmp_path / f"c{suffix}"
    write_video(path, src, fps=30.0)
    err = np.abs(read_video(path).frames.astype(int) - src)
    assert err.mean() < 4.0


@pytest.mark.parametrize("suffix,fps", [(".avi", 50.0), (".mp4", 29.97), (".avi", 12.5)])
def test_video_info_reports_exact_frames_fps_and_size(tmp_path, suffix, fps):
    path = tmp_path / f"p{suffix}"
    write_video(path, smooth_cine(frames=13, height=48, width=64), fps=fps)
    info = video_info(path)
    assert (info.frames, info.height, info.width) == (13, 48, 64)
    assert info.fps == pytest.approx(fps, rel=1e-4)
    assert info.kind == "cine" and info.fps_source == "container" and info.region is None


def test_video_info_counts_packets_when_container_states_no_count(tmp_path):
    path = tmp_path / "v.mkv"
    write_video(path, smooth_cine(frames=11), fps=25.0, codec="mjpeg")
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0  # Matroska keeps no frame count: demuxing must count
    assert video_info(path).frames == 11
    assert read_video(path).frames.shape[0] == 11


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_seek_subset_equals_full_decode(tmp_path, suffix):
    path = tmp_path / f"s{suffix}"
    write_video(path, smooth_cine(frames=40), fps=30.0, keyframe_interval=8)
    full = read_video(path).frames
    wanted = [13, 5, 31, 39, 17, 17, 8]
    sub = read_video(path, wanted)
    assert sub.frame_indices.tolist() == wanted
    assert np.array_equal(sub.frames, full[wanted])
    tail = read_video(path, [33, 34, 35])
    assert np.array_equal(tail.frames, full[33:36])


def test_mp4_with_keyframe_interval_really_has_several_keyframes(tmp_path):
    path = tmp_path / "k.mp4"
    write_video(path, smooth_cine(frames=40), fps=30.0, keyframe_interval=8)
    with av.open(str(path)) as c:
        keys = sum(1 for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe)
    assert keys >= 4


@pytest.mark.parametrize("bad", [[-1], [16], [0, 99]])
def test_out_of_range_indices_raise(tmp_path, bad):
    path = tmp_path / "r.avi"
    write_video(path, smooth_cine(), fps=30.0)
    with pytest.raises(VideoReadError, match="out of range"):
        read_video(path, bad)


@pytest.mark.parametrize("suffix,keep", [(".avi", 0.5), (".avi", 0.9), (".mp4", 0.6)])
def test_truncated_file_raises_naming_the_file(tmp_path, suffix, keep):
    good = tmp_path / f"good{suffix}"
    write_video(good, smooth_cine(frames=24), fps=30.0)
    data = good.read_bytes()
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(VideoReadError) as exc:
        read_video(bad)
    assert str(bad) in str(exc.value) and exc.value.path == str(bad)


def test_empty_file_raises(tmp_path):
    path = tmp_path / "empty.avi"
    path.write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty"):
        video_info(path)
    with pytest.raises(VideoReadError, match="empty"):
        read_video(path)


def test_container_without_frames_raises_zero_frames(tmp_path):
    path = tmp_path / "zero.avi"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuvj444p"
        c.start_encoding()  # header only, no frame
    assert path.stat().st_size > 0
    with pytest.raises(VideoReadError, match="zero frames"):
        video_info(path)
    with pytest.raises(VideoReadError, match="zero frames"):
        read_video(path)


def test_missing_file_raises_naming_it(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoReadError, match="not found") as exc:
        read_video(path)
    assert "nope.mp4" in str(exc.value)


def test_unsupported_format_raises(tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(VideoReadError, match="unsupported format"):
        read_video(path)


def test_garbage_with_video_suffix_raises(tmp_path):
    path = tmp_path / "junk.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError):
        read_video(path)


def test_single_frame_video_is_a_still(tmp_path):
    path = tmp_path / "one.avi"
    write_video(path, smooth_cine(frames=1), fps=30.0)
    with pytest.raises(NotACineError) as exc:
        read_video(path)
    assert exc.value.kind == "still"
    video = read_video(path, allow_non_cine=True)
    assert video.info.kind == "still" and video.frames.shape[0] == 1


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_write_is_deterministic(tmp_path, suffix):
    src = smooth_cine(frames=20, height=112, width=112)
    digests = set()
    for _ in range(3):
        path = tmp_path / f"d{suffix}"
        write_video(path, src, fps=50.0)
        digests.add(hashlib.sha256(Path(path).read_bytes()).hexdigest())
    assert len(digests) == 1


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "a.avi", np.zeros((2, 8, 8), np.float32), fps=30.0)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 9, 8), np.uint8), fps=30.0)
    with pytest.raises(ValueError, match="suffix"):
        write_video(tmp_path / "a.gif", np.zeros((2, 8, 8), np.uint8), fps=30.0)


def test_estimate_mask_for_container_video(tmp_path, make_fan_cine, mask_iou):
    frames, fan = make_fan_cine(frames=12, height=96, width=128)
    path = tmp_path / "fan.avi"
    write_video(path, frames, fps=30.0)
    assert read_video(path).mask is None
    clip = read_video(path, [2, 3], estimate_mask=True)
    assert clip.mask.shape == (96, 128) and mask_iou(clip.mask, fan) > 0.9
    other = read_video(path, [9, 10], estimate_mask=True)
    assert np.array_equal(clip.mask, other.mask)  # one mask per file, whatever the clip


def test_non_integer_indices_raise(tmp_path):
    path = tmp_path / "i.avi"
    write_video(path, smooth_cine(), fps=30.0)
    with pytest.raises(VideoReadError, match="integers"):
        read_video(path, [1.5, 2.0])
    assert read_video(path, np.array([1.0, 2.0])).frame_indices.tolist() == [1, 2]
