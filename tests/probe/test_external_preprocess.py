"""EchoPrime's and PanEcho's input recipes (conf/backbone/*.yaml `preprocess`) on synthetic clips, against
references written by hand from the facts in tests/fixtures/*_layout.json (numpy, float64; no torch
resize), and the clip sampling each model was trained on."""

import math

import numpy as np
import pytest
import torch

import echojepa.io as eio
from echojepa.data.clips import ClipSpec, padded_positions, sample_clip_indices
from echojepa.data.index import Record
from echojepa.data.preprocess import Preprocess, preprocess_from_config, zero_padding
from echojepa.data.torchdata import VideoClipDataset
from echojepa.data.transforms import Compose, Normalize, Resize, build_transform
from echojepa.probe.backbones import load_backbone_config

ECHOPRIME_MEAN = np.array([29.110628, 28.076836, 29.096405])  # 0-255 scale, as EchoPrime publishes them
ECHOPRIME_STD = np.array([47.989223, 46.456997, 47.20083])
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def recipe(name: str) -> Preprocess:
    return preprocess_from_config(load_backbone_config(name)["preprocess"])


def frames_uint8(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """[T, H, W, 3] uint8 with distinct colour channels (so a channel swap shows)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(t, h, w, 1))
    return np.clip(base + np.array([0, 40, -40]), 0, 255).astype(np.uint8)


def to_video01(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255  # [3, T, H, W]


def cubic_weights(n_in: int, n_out: int) -> np.ndarray:
    """cv2.INTER_CUBIC along one axis: pixel centres at +0.5, Keys kernel a = -0.75, edge pixels
    repeated, no antialiasing. [n_out, n_in]."""
    a, scale = -0.75, n_in / n_out
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = (o + 0.5) * scale - 0.5
        i0 = math.floor(src)
        for k in range(-1, 3):
            d = abs(src - (i0 + k))
            wk = ((a + 2) * d - (a + 3)) * d * d + 1 if d <= 1 else ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
            m[o, min(max(i0 + k, 0), n_in - 1)] += wk
    return m


def echoprime_reference(frames: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """EchoPrime per frame: mask outside the sector, utils.crop_and_scale (centre crop to 1:1 with
    Python's round, zoom 0.1 via int(), cv2.resize 224 INTER_CUBIC on uint8 -> whole levels, halves up), then
    (x - mean) / std on 0-255. [3, T, 224, 224]."""
    out = []
    for frame in frames.astype(np.float64):
        img = frame * mask[..., None] if mask is not None else frame
        h, w = img.shape[:2]
        if w > h:
            p = int(round((w - h) / 2))
            img = img[:, p:-p]
        elif h > w:
            p = int(round((h - w) / 2))
            img = img[p:-p]
        py, px = int(img.shape[0] * 0.1), int(img.shape[1] * 0.1)
        img = img[py:-py, px:-px]
        rows = np.tensordot(cubic_weights(img.shape[0], 224), img, axes=(1, 0))  # [224, W, 3]
        img = np.tensordot(cubic_weights(img.shape[1], 224), rows, axes=(1, 1)).transpose(1, 0, 2)
        out.append((np.clip(np.floor(img + 0.5), 0, 255) - ECHOPRIME_MEAN) / ECHOPRIME_STD)
    return np.stack(out).transpose(3, 0, 1, 2)


def assert_matches(ours: torch.Tensor, ref: np.ndarray, level: float) -> None:
    """Equal up to float32 rounding, except where float32 and float64 round a value sitting on a half
    grey level to neighbouring levels: then one `level` apart, on a handful of pixels."""
    diff = np.abs(ours.double().numpy() - ref)
    assert diff.max() <= level + 1e-4
    assert (diff > 1e-4).mean() < 1e-3


@pytest.mark.parametrize(
    "h, w",
    [
        (60, 85),  # wider than tall with an odd difference: upstream leaves 60 x 61; enlarged to 224
        (620, 500),  # taller than wide (a DICOM-sized frame): shrunk to 224, where antialiasing would show
    ],
)
def test_echoprime_recipe_reproduces_mask_crop_and_scale_and_0_255_normalisation(h, w):
    pre = recipe("echoprime")
    frames = frames_uint8(2, h, w)
    yy, xx = np.mgrid[:h, :w]
    mask = (yy - 0.1 * h) ** 2 + (xx - w / 2) ** 2 < (0.9 * h) ** 2  # a fan-like disk; corners outside
    ours, _ = pre.transform(False)(to_video01(frames), torch.from_numpy(mask))
    assert ours.shape == (3, 2, 224, 224)
    assert_matches(ours, echoprime_reference(frames, mask), level=1 / ECHOPRIME_STD.min())
    unmasked, _ = pre.transform(False)(to_video01(frames), None)  # containers: no mask from the reader
    assert_matches(unmasked, echoprime_reference(frames, None), level=1 / ECHOPRIME_STD.min())


def test_echoprime_takes_the_first_32_frames_at_stride_2_and_zero_pads_short_videos():
    pre = recipe("echoprime")
    spec = pre.clip_spec({"frames": None, "frame_step": 1, "segments": 1})  # a task asking for stride 1
    assert spec.frame_step == 2  # fixed: the weights saw stride 2
    upstream = np.arange(0, 32, 2)  # x[:, 0:32:2] after padding x to 32 frames
    for n_frames in (20, 31, 45, 300):
        for mode in ("center", "random", "all"):
            clips = sample_clip_indices(n_frames, 30.0, spec, np.random.default_rng(0), mode)
            real = upstream < n_frames
            assert clips.shape == (1, 16), (n_frames, mode)
            assert np.array_equal(clips[0][real], upstream[real]), (n_frames, mode)
            assert np.array_equal(padded_positions(clips, n_frames, 30.0, spec)[0], ~real)
    video = torch.ones(1, 3, 16, 4, 4)
    padded = zero_padding(video, sample_clip_indices(20, 30.0, spec, mode="center"), 20, 30.0, spec)
    assert padded[0, :, :10].eq(1).all() and padded[0, :, 10:].eq(0).all()  # 0,2,...,18 real; 20.. zero


def test_echoprime_clip_from_a_short_video_file_is_the_hand_computed_tensor(tmp_path):
    pre = recipe("echoprime")
    path = tmp_path / "short.avi"
    eio.write_video(path, frames_uint8(20, 60, 84, seed=1), 25.0)
    decoded = eio.read_video(path).frames  # what the decoder gives: the reference starts from it
    ds = VideoClipDataset(
        [Record(path, "test", "p", "s")], pre.clip_spec(None), pre.transform(False), mode="center"
    )
    ours = ds[0]["video"][0]  # [3, 16, 224, 224]
    ref = np.concatenate([echoprime_reference(decoded[0:20:2], None), np.zeros((3, 6, 224, 224))], axis=1)
    assert_matches(ours, ref, level=1 / ECHOPRIME_STD.min())


def area_shrink_2x(x: np.ndarray, axis: int) -> np.ndarray:
    """cv2 INTER_AREA by 2 along one axis: the mean of each pair of pixels."""
    x = np.moveaxis(x, axis, 0)
    return np.moveaxis((x[0::2] + x[1::2]) / 2, 0, axis)


def area_shrink_1_5x(x: np.ndarray, axis: int) -> np.ndarray:
    """cv2 INTER_AREA by 1.5 along one axis: output cell 2k covers pixel 3k and half of 3k+1, cell 2k+1
    the other half of 3k+1 and pixel 3k+2."""
    x = np.moveaxis(x, axis, 0)
    out = np.empty((2 * (x.shape[0] // 3), *x.shape[1:]))
    out[0::2] = (x[0::3] + 0.5 * x[1::3]) / 1.5
    out[1::2] = (0.5 * x[1::3] + x[2::3]) / 1.5
    return np.moveaxis(out, 0, axis)


def panecho_reference(frames: np.ndarray, shrink) -> np.ndarray:
    """PanEcho: cv2 reads BGR (never converted), cv2.resize to 256 x 256 INTER_AREA on uint8 (whole
    levels, halves up), v2.CenterCrop(224), ToDtype(scale=True) -> 0-1, ImageNet Normalize."""
    resized = shrink(shrink(frames[..., ::-1].astype(np.float64), 1), 2)  # [T, 256, 256, 3] BGR
    crop = np.clip(np.floor(resized + 0.5), 0, 255)[:, 16:240, 16:240]
    return ((crop / 255 - IMAGENET_MEAN) / IMAGENET_STD).transpose(3, 0, 1, 2)


@pytest.mark.parametrize("size, shrink", [(512, area_shrink_2x), (384, area_shrink_1_5x)])
def test_panecho_recipe_is_resize_256_centre_crop_224_bgr_imagenet_0_1(size, shrink):
    pre = recipe("panecho")
    frames = frames_uint8(2, size, size, seed=2)
    ours, _ = pre.transform(False)(to_video01(frames), None)
    assert_matches(ours, panecho_reference(frames, shrink), level=1 / 255 / IMAGENET_STD.min())
    # channel 0 is blue, normalised with ImageNet's red statistics
    flipped, _ = pre.transform(False)(to_video01(frames[..., ::-1].copy()), None)
    assert not torch.allclose(ours, flipped)


def test_panecho_clips_are_16_consecutive_frames_and_4_test_clips_when_all_clips_are_used():
    pre = recipe("panecho")
    spec = pre.clip_spec({"frames": None, "frame_step": 2, "segments": 1})  # a task asking for stride 2
    assert (spec.frames, spec.frame_step) == (16, 1)
    centre = sample_clip_indices(120, 30.0, spec, mode="center")
    assert centre.shape == (1, 16) and np.array_equal(np.diff(centre[0]), np.ones(15))
    tta = sample_clip_indices(120, 30.0, spec, mode="all")
    assert tta.shape == (4, 16)  # train.py --num_clips 4, averaged at test time
    assert (np.diff(tta, axis=1) == 1).all() and len(set(tta[:, 0])) == 4 and tta.max() < 120
    short = sample_clip_indices(10, 30.0, spec, mode="center")[0]
    assert short.tolist() == list(range(10)) + [9] * 6  # last frame carried forward
    assert not padded_positions(short[None], 10, 30.0, spec).any()


def test_default_recipe_is_the_old_build_transform_and_sampling():
    pre = preprocess_from_config(load_backbone_config("vjepa2_vitl")["preprocess"])
    for train in (False, True):
        ours, old = pre.transform(train), build_transform(train, 224, pre.mean, pre.std)
        assert [type(t) for t in ours.transforms] == [type(t) for t in old.transforms]
        assert [vars(t) for t in ours.transforms[:-1]] == [vars(t) for t in old.transforms[:-1]]
    assert isinstance(ours, Compose) and isinstance(ours.transforms[-1], Normalize)
    assert isinstance(pre.transform(False).transforms[0], Resize)
    assert pre.clip_spec({"frames": None, "frame_step": 3, "segments": 2}) == ClipSpec(16, 3, None, 2)
    assert pre.identity() == {
        "img_size": 224,
        "num_frames": 16,
        "frame_step": 2,
        "target_fps": None,
        "mean": list(pre.mean),
        "std": list(pre.std),
        "segments": 1,
    }


@pytest.mark.parametrize(
    "key, value",
    [("start", "middle"), ("pad", "mirror"), ("channel_order", "rbg"), ("zoom", 0.6), ("crop", 1)],
)
def test_bad_recipe_values_and_unknown_keys_are_refused(key, value):
    cfg = {**load_backbone_config("echoprime")["preprocess"], key: value}
    with pytest.raises(ValueError, match=key):
        preprocess_from_config(cfg)
