from __future__ import annotations

import numpy as np

from echojepa.io.sector import convex_hull, estimate_sector_mask, fill_convex_hull, mask_bbox, sample_indices


def test_fan_mask_matches_true_fan_despite_text_and_ecg(make_fan_cine, mask_iou):
    frames, fan = make_fan_cine(frames=12, height=96, width=128)
    mask = estimate_sector_mask(frames)
    assert mask.shape == fan.shape and mask.dtype == bool
    assert mask_iou(mask, fan) > 0.9


def test_static_text_and_ecg_strip_are_outside_the_mask(make_fan_cine):
    frames, _ = make_fan_cine(frames=12, height=96, width=128)
    mask = estimate_sector_mask(frames)
    assert not mask[2:8, 2:20].any()
    assert not mask[4:10, 128 - 22 : 128 - 4].any()
    assert not mask[-9:, :].any()


def test_dark_blood_pool_inside_fan_is_filled(make_fan_cine):
    frames, fan = make_fan_cine(frames=12, overlays=False)
    mask = estimate_sector_mask(frames)
    assert mask[int(0.45 * 96), 64]  # centre of the dark pool


def test_all_black_cine_gives_empty_mask():
    assert not estimate_sector_mask(np.zeros((4, 32, 32, 3), np.uint8)).any()


def test_single_frame_uses_non_black_pixels():
    frame = np.zeros((1, 40, 40), np.uint8)
    frame[0, 10:30, 10:30] = 100
    mask = estimate_sector_mask(frame)
    assert mask[10:30, 10:30].all() and mask.sum() == 400


def test_convex_hull_fills_concave_shape():
    ring = np.zeros((41, 41), bool)
    yy, xx = np.mgrid[:41, :41]
    r = np.hypot(yy - 20, xx - 20)
    ring[(r > 12) & (r <= 16)] = True
    filled = fill_convex_hull(ring)
    assert filled[20, 20] and filled[(r <= 12)].all()
    assert not filled[r > 17].any()


def test_mask_bbox_is_half_open():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_bbox(m) == (3, 2, 9, 5)
    assert mask_bbox(np.zeros((3, 3), bool)) is None


def test_sample_indices_span_the_video_evenly():
    idx = sample_indices(100, 16)
    assert idx[0] == 0 and idx[-1] == 99 and len(idx) == 16 and np.all(np.diff(idx) > 0)
    assert sample_indices(5, 16).tolist() == [0, 1, 2, 3, 4]


def test_hull_fill_matches_brute_force_half_planes():
    rng = np.random.default_rng(3)
    mask = np.zeros((50, 60), bool)
    pts = rng.integers([5, 5], [45, 55], size=(12, 2))
    mask[pts[:, 0], pts[:, 1]] = True
    filled = fill_convex_hull(mask)
    hull = convex_hull(np.stack([pts[:, 1], pts[:, 0]], axis=1))  # (x, y)
    yy, xx = np.mgrid[:50, :60]
    inside = np.ones((50, 60), bool)
    for (ax, ay), (bx, by) in zip(hull, np.roll(hull, -1, axis=0)):
        inside &= (bx - ax) * (yy - ay) - (by - ay) * (xx - ax) >= 0
    assert np.array_equal(filled, inside)
