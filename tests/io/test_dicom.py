from __future__ import annotations

import hashlib
import logging

import numpy as np
import pydicom
import pytest

from echojepa.io import (
    NotACineError,
    Region,
    UltrasoundRegion,
    VideoReadError,
    read_video,
    video_info,
    write_dicom,
)
from echojepa.io.dicom import US_MULTIFRAME_SOP_CLASS

PATCHES = [  # (row slice, col slice, RGB colour)
    (slice(8, 40), slice(8, 40), (200, 40, 40)),
    (slice(8, 40), slice(48, 80), (40, 190, 60)),
    (slice(48, 80), slice(8, 40), (50, 60, 210)),
    (slice(48, 80), slice(48, 80), (220, 210, 50)),
    (slice(48, 80), slice(88, 120), (128, 128, 128)),
]
IDENTIFIERS = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN123456",
    "PatientBirthDate": "19610203",
    "AccessionNumber": "ACC99887",
    "InstitutionName": "Mercy Harbor Clinic",
    "StudyID": "STUDY4242",
    "ReferringPhysicianName": "Strange^Stephen",
}
FULL = [UltrasoundRegion(0, 0, 128, 96)]  # region over the whole frame: no estimation, no crop


def colour_patches(frames: int = 4, height: int = 96, width: int = 128) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    for rows, cols, rgb in PATCHES:
        img[rows, cols] = rgb
    out = np.repeat(img[None], frames, axis=0)
    out[:, 88:92, 4:124] = (np.arange(frames) * 40 + 20)[:, None, None, None]  # something that moves
    return out


def patch_means(frames: np.ndarray) -> np.ndarray:
    """Mean RGB of each patch interior (away from JPEG edge ringing): [P, 3]."""
    return np.array(
        [
            frames[:, r.start + 4 : r.stop - 4, c.start + 4 : c.stop - 4].reshape(-1, 3).mean(0)
            for r, c, _ in PATCHES
        ]
    )


@pytest.mark.parametrize("photometric,tol", [("RGB", 0.0), ("YBR_FULL_422", 6.0)])
def test_colour_converted_exactly_once(tmp_path, photometric, tol):
    src = colour_patches()
    path = tmp_path / f"{photometric}.dcm"
    write_dicom(path, src, 30.0, photometric=photometric, regions=FULL)
    video = read_video(path)
    assert video.frames.shape == src.shape and video.frames.dtype == np.uint8
    got, want = patch_means(video.frames), patch_means(src)
    # Never converted: YCbCr read as RGB (grey would turn ~(128,128,128) -> pinkish/green), converted
    # twice: the green tint. Both move these means by tens of levels.
    assert np.abs(got - want).max() <= tol + 1e-9
    assert np.abs(video.frames.astype(int) - src).mean() < max(1.0, tol)


def test_ybr_file_really_is_jpeg_baseline_422(tmp_path):
    path = tmp_path / "ybr.dcm"
    write_dicom(path, colour_patches(), 30.0, photometric="YBR_FULL_422", regions=FULL)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert ds.PhotometricInterpretation == "YBR_FULL_422" and ds.SOPClassUID == US_MULTIFRAME_SOP_CLASS
    assert ds["PixelData"].is_undefined_length and int(ds.NumberOfFrames) == 4


def test_monochrome2_round_trip_is_exact_and_grey(tmp_path):
    src = colour_patches()[..., 0]  # [T, H, W]
    path = tmp_path / "mono.dcm"
    write_dicom(path, src, 30.0, photometric="MONOCHROME2", regions=FULL)
    video = read_video(path)
    assert video.frames.shape == (*src.shape, 3)
    assert np.array_equal(video.frames[..., 0], src) and np.array_equal(video.frames[..., 2], src)
    assert video.info.meta["photometric"] == "MONOCHROME2"


def test_subset_of_frames_equals_full_decode(tmp_path):
    path = tmp_path / "sub.dcm"
    write_dicom(path, colour_patches(frames=8), 30.0, regions=FULL)
    full = read_video(path).frames
    sub = read_video(path, [6, 1, 6])
    assert sub.frame_indices.tolist() == [6, 1, 6] and np.array_equal(sub.frames, full[[6, 1, 6]])
    with pytest.raises(VideoReadError, match="out of range"):
        read_video(path, [8])


@pytest.mark.parametrize(
    "kwargs,fps,source",
    [
        ({"frame_time_tag": True, "cine_rate_tag": False}, 25.0, "FrameTime"),
        ({"frame_time_tag": True, "cine_rate_tag": True}, 25.0, "FrameTime"),
        ({"frame_time_tag": False, "cine_rate_tag": True}, 25.0, "CineRate"),
    ],
)
def test_fps_rule_order(tmp_path, kwargs, fps, source):
    path = tmp_path / "fps.dcm"
    write_dicom(path, colour_patches(), 25.0, regions=FULL, **kwargs)
    info = video_info(path)
    assert info.fps == pytest.approx(fps) and info.fps_source == source


def test_frame_time_wins_over_a_different_cine_rate(tmp_path):
    path = tmp_path / "both.dcm"
    write_dicom(path, colour_patches(), 40.0, regions=FULL, cine_rate_tag=True)
    ds = pydicom.dcmread(path)
    ds.CineRate = 12
    ds.save_as(path)
    info = video_info(path)
    assert info.fps == pytest.approx(40.0) and info.fps_source == "FrameTime"


def test_missing_rate_defaults_to_30_with_warning_naming_file(tmp_path, caplog):
    path = tmp_path / "norate.dcm"
    write_dicom(path, colour_patches(), None, regions=FULL)
    with caplog.at_level(logging.WARNING, logger="echojepa.io.dicom"):
        video = read_video(path)
    assert video.info.fps == 30.0 and video.info.fps_source == "default"
    assert any(str(path) in r.getMessage() and "30" in r.getMessage() for r in caplog.records)


def test_tissue_region_crop_uses_largest_2d_region(tmp_path):
    src = colour_patches()
    regions = [
        UltrasoundRegion(20, 10, 100, 80),  # largest tissue region
        UltrasoundRegion(0, 0, 16, 16),  # small tissue region
        UltrasoundRegion(0, 84, 128, 96, spatial_format=5, data_type=0x0A),  # ECG strip
    ]
    path = tmp_path / "crop.dcm"
    write_dicom(path, src, 30.0, photometric="RGB", regions=regions)
    info = video_info(path)
    assert info.region == Region(20, 10, 100, 80) and (info.height, info.width) == (70, 80)
    video = read_video(path)
    assert video.frames.shape == (4, 70, 80, 3)
    assert np.array_equal(video.frames, src[:, 10:80, 20:100])
    assert video.mask is not None and video.mask.shape == (70, 80)
    assert video.info.meta["crop"] == "region"


def test_region_written_with_inclusive_dicom_corners(tmp_path):
    path = tmp_path / "reg.dcm"
    write_dicom(path, colour_patches(), 30.0, regions=[UltrasoundRegion(20, 10, 100, 80)])
    item = pydicom.dcmread(path).SequenceOfUltrasoundRegions[0]
    assert (item.RegionLocationMaxX1, item.RegionLocationMaxY1) == (99, 79)
    assert item.RegionSpatialFormat == 1 and item.RegionDataType == 1


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "YBR_FULL_422"])
def test_without_regions_fan_is_estimated_cropped_and_zeroed(tmp_path, make_fan_cine, mask_iou, photometric):
    frames, fan = make_fan_cine(frames=12, height=96, width=128)
    path = tmp_path / "fan.dcm"
    write_dicom(path, frames, 30.0, photometric=photometric)
    ys, xs = np.nonzero(fan)
    true_box = Region(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    info = video_info(path)
    video = read_video(path, [0, 5])
    assert info.region == video.info.region
    box = video.info.region
    assert max(abs(a - b) for a, b in zip(box.as_list(), true_box.as_list())) <= 2
    assert video.frames.shape == (2, box.height, box.width, 3)
    assert video.mask.shape == (box.height, box.width)
    assert not video.frames[:, ~video.mask].any()  # zero outside the fan (text and ECG gone)
    full_mask = np.zeros_like(fan)
    full_mask[box.y0 : box.y1, box.x0 : box.x1] = video.mask
    assert mask_iou(full_mask, fan) > 0.9
    assert np.array_equal(read_video(path, [11]).mask, video.mask)  # same crop for every clip


def test_still_image_is_not_a_cine(tmp_path):
    path = tmp_path / "still.dcm"
    write_dicom(path, colour_patches(frames=1), None, kind="still", regions=FULL)
    ds = pydicom.dcmread(path)
    assert "NumberOfFrames" not in ds
    with pytest.raises(NotACineError) as exc:
        read_video(path)
    assert exc.value.kind == "still" and str(path) in str(exc.value)
    video = read_video(path, allow_non_cine=True)
    assert video.info.kind == "still" and video.frames.shape == (1, 96, 128, 3)


def test_doppler_spectrum_is_not_a_cine(tmp_path):
    path = tmp_path / "doppler.dcm"
    write_dicom(path, colour_patches(frames=1), None, kind="doppler")
    with pytest.raises(NotACineError) as exc:
        read_video(path)
    assert exc.value.kind == "doppler"
    assert video_info(path).kind == "doppler"
    assert read_video(path, allow_non_cine=True).info.kind == "doppler"


def test_doppler_page_with_small_2d_reference_is_doppler(tmp_path):
    regions = [
        UltrasoundRegion(40, 0, 88, 30),  # small 2-D reference image
        UltrasoundRegion(0, 30, 128, 96, spatial_format=3, data_type=4),  # CW spectrum
    ]
    path = tmp_path / "cw.dcm"
    write_dicom(path, colour_patches(frames=3), 30.0, regions=regions, kind="doppler")
    assert video_info(path).kind == "doppler"


def test_dicom_without_pixel_data_raises(tmp_path):
    path = tmp_path / "nopix.dcm"
    write_dicom(path, colour_patches(), 30.0, regions=FULL)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    for fn in (video_info, read_video):
        with pytest.raises(VideoReadError, match="no PixelData") as exc:
            fn(path)
        assert str(path) in str(exc.value)


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL_422"])
def test_truncated_dicom_raises(tmp_path, photometric):
    good = tmp_path / "good.dcm"
    write_dicom(good, colour_patches(frames=6), 30.0, photometric=photometric, regions=FULL)
    data = good.read_bytes()
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoReadError) as exc:
        read_video(bad)
    assert str(bad) in str(exc.value)


def test_non_dicom_with_dcm_suffix_raises(tmp_path):
    path = tmp_path / "fake.dcm"
    path.write_bytes(b"hello, not a dicom" * 20)
    with pytest.raises(VideoReadError, match="not a DICOM"):
        read_video(path)


def test_dicom_detected_by_magic_without_suffix(tmp_path):
    path = tmp_path / "IM0001"
    write_dicom(path, colour_patches(), 30.0, regions=FULL)
    assert video_info(path).format == "dicom"


def test_write_is_deterministic_per_seed(tmp_path):
    src = colour_patches()

    def digest(seed: str, name: str) -> str:
        path = tmp_path / name
        write_dicom(path, src, 30.0, identifiers=IDENTIFIERS, uids_seed=seed)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert digest("a", "1.dcm") == digest("a", "2.dcm")
    assert digest("a", "3.dcm") != digest("b", "4.dcm")


def test_unknown_identifier_keyword_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="keyword"):
        write_dicom(tmp_path / "x.dcm", colour_patches(), 30.0, identifiers={"NotAKeyword": "x"})


def test_patient_identifiers_never_leak(tmp_path, caplog, capsys):
    src = colour_patches()
    cine = tmp_path / "cine.dcm"
    noregion = tmp_path / "noregion.dcm"
    nopix = tmp_path / "nopix.dcm"
    still = tmp_path / "still.dcm"
    cut = tmp_path / "cut.dcm"
    write_dicom(cine, src, 30.0, regions=FULL, identifiers=IDENTIFIERS, uids_seed="s")
    write_dicom(noregion, src, None, identifiers=IDENTIFIERS)  # also triggers the default-fps warning
    write_dicom(still, src[:1], None, kind="still", identifiers=IDENTIFIERS)
    ds = pydicom.dcmread(cine)
    del ds.PixelData
    ds.save_as(nopix)
    cut.write_bytes(cine.read_bytes()[:-4000])
    assert b"MRN123456" in cine.read_bytes()  # the writer does write them: the reader must not leak

    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for path in (cine, noregion):
            info = video_info(path)
            video = read_video(path)
            seen += [repr(info), repr(video), repr(video.info), str(info.to_json()), repr(info.meta)]
            print(info, video.info)
        for path, kwargs in ((nopix, {}), (still, {}), (cut, {})):
            try:
                read_video(path, **kwargs)
            except VideoReadError as exc:
                seen += [str(exc), repr(exc), exc.reason]
            else:
                seen.append("no error")
            try:
                seen.append(repr(video_info(path)))
            except VideoReadError as exc:
                seen += [str(exc), repr(exc)]
    captured = capsys.readouterr()
    seen += [captured.out, captured.err, caplog.text]
    seen += [r.getMessage() for r in caplog.records]
    assert "no error" not in seen
    blob = "\n".join(seen)
    assert "fps" in blob and "dicom" in blob  # the checks below look at real output
    for value in IDENTIFIERS.values():
        for form in {value, value.replace("^", " "), value.split("^")[0]}:
            assert form not in blob, f"identifier {form!r} leaked"
