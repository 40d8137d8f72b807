"""Bad input, one test per case: a clear error naming the file and the reason by default, or an
explicit, counted skip with on_error="skip"; never another sample in its place."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import pytest

from echojepa.data.check import check_dataset
from echojepa.data.datasets import DatasetError, read_echonet_dynamic, read_index, read_mimic
from echojepa.io.types import VideoReadError


def _row(name: str, ef: object = 60.0, split: str = "TRAIN", frames: int = 3) -> list:
    return [name, ef, 20.0, 50.0, 16, 16, 25, frames, split]


def _assert_raises_then_skips(root: Path, bad: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    """Default: DatasetError naming the file and reason. Skip: the file alone is left out, logged, counted."""
    with pytest.raises(DatasetError, match=reason) as info:
        read_echonet_dynamic(root)
    assert Path(info.value.path).name == bad and bad in str(info.value)
    with caplog.at_level(logging.WARNING, logger="echojepa.data.datasets"):
        index = read_echonet_dynamic(root, on_error="skip")
    assert [m for m in caplog.messages if bad in m and "skipped" in m]
    assert [Path(f).name for f, _ in index.skipped] == [bad]
    assert bad not in {r.path.name for r in index.records}
    assert len(index) == 3


def _read_video(path: Path) -> None:
    from echojepa.io import read_video

    read_video(path)


def test_truncated_video_is_reported_by_check_and_io(dynamic_root: Path) -> None:
    bad = dynamic_root / "Videos" / "0X2.avi"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    problems = check_dataset("echonet_dynamic", dynamic_root).problems
    assert [Path(f).name for f, _ in problems] == ["0X2.avi"]
    assert "truncated" in problems[0][1]
    with pytest.raises(VideoReadError, match="0X2.avi"):
        _read_video(bad)


def test_corrupt_video_is_reported_by_check_and_io(dynamic_root: Path) -> None:
    bad = dynamic_root / "Videos" / "0X3.avi"
    bad.write_bytes(b"\x00garbage" * 100)
    problems = check_dataset("echonet_dynamic", dynamic_root).problems
    assert [Path(f).name for f, _ in problems] == ["0X3.avi"] and problems[0][1]
    with pytest.raises(VideoReadError, match="0X3.avi"):
        _read_video(bad)


def test_zero_frame_video_is_reported_by_check(dynamic_root: Path) -> None:
    bad = dynamic_root / "Videos" / "0X4.avi"
    container = av.open(str(bad), "w")  # a valid AVI header with a video stream and no frames
    stream = container.add_stream("mjpeg", rate=25)
    stream.width, stream.height, stream.pix_fmt = 16, 16, "yuvj444p"
    container.start_encoding()
    container.close()
    problems = check_dataset("echonet_dynamic", dynamic_root).problems
    assert problems == [(str(bad), "zero frames")]


def test_zero_frames_in_file_list_raises_or_skips(dynamic_root: Path, dynamic_filelist, caplog) -> None:
    dynamic_filelist([_row("0X1"), _row("0X2", frames=0), _row("0X3"), _row("0X4")])
    _assert_raises_then_skips(dynamic_root, "0X2.avi", "zero frames", caplog)


def test_missing_listed_file_raises_or_skips(dynamic_root: Path, caplog) -> None:
    (dynamic_root / "Videos" / "0X3.avi").unlink()
    _assert_raises_then_skips(dynamic_root, "0X3.avi", "file is missing", caplog)


def test_nan_label_raises_or_skips(dynamic_root: Path, dynamic_filelist, caplog) -> None:
    dynamic_filelist([_row("0X1"), _row("0X2"), _row("0X3", ef="NaN"), _row("0X4")])
    _assert_raises_then_skips(dynamic_root, "0X3.avi", "not a finite number", caplog)


def test_out_of_range_label_raises_or_skips(dynamic_root: Path, dynamic_filelist, caplog) -> None:
    dynamic_filelist([_row("0X1", ef=-5), _row("0X2"), _row("0X3"), _row("0X4")])
    _assert_raises_then_skips(dynamic_root, "0X1.avi", r"ef=-5 outside the range \[0, 100\]", caplog)


def test_unknown_split_value_raises_or_skips(dynamic_root: Path, dynamic_filelist, caplog) -> None:
    dynamic_filelist([_row("0X1"), _row("0X2"), _row("0X3"), _row("0X4", split="EXTERNAL")])
    _assert_raises_then_skips(dynamic_root, "0X4.avi", "unknown split value 'EXTERNAL'", caplog)


def test_dicom_without_pixels_raises_or_skips(tmp_path: Path, table, mimic_dicom) -> None:
    import pydicom

    good = mimic_dicom(tmp_path / "files/p10/p10000001/s50000001/50000001_0001.dcm")
    bad = mimic_dicom(tmp_path / "files/p10/p10000001/s50000001/50000001_0002.dcm")
    ds = pydicom.dcmread(bad)
    del ds.PixelData
    ds.save_as(bad)
    header = ["subject_id", "study_id", "acquisition_datetime", "dicom_filepath"]
    table(
        tmp_path / "echo-record-list.csv",
        header,
        [[10000001, 50000001, "", str(p.relative_to(tmp_path))] for p in (good, bad)],
    )
    with pytest.raises(DatasetError, match="50000001_0002.dcm") as info:
        read_mimic(tmp_path)
    assert "pixel" in info.value.reason.lower()
    index = read_index("mimic", tmp_path, on_error="skip")
    assert [r.path for r in index.records] == [good]
    assert [f for f, _ in index.skipped] == [str(bad)]
