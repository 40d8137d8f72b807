"""echojepa.predict.drawing: token weights laid on the token grid, one heat scale per task."""

from __future__ import annotations

import numpy as np

from echojepa.predict import PredictOptions
from echojepa.predict.drawing import attention_rows, heat_volume


def test_heat_volume_gives_each_frame_its_tubelets_weights_and_clips_negatives():
    weights = np.array([[1.0, 2.0, -3.0, 4.0]])  # grid (T'=2, H'=1, W'=2)
    heat = heat_volume(weights, (2, 1, 2), frames=4, size=2)  # [W, F, S, S]
    assert heat.shape == (1, 4, 2, 2)
    for f in (0, 1):  # frames 0-1 belong to tubelet 0, frames 2-3 to tubelet 1
        np.testing.assert_allclose(heat[0, f], [[1.0, 2.0], [1.0, 2.0]])
        np.testing.assert_allclose(heat[0, f + 2], [[0.0, 4.0], [0.0, 4.0]])


def test_a_tasks_clips_share_one_heat_scale_and_tasks_do_not():
    grid, shape = (1, 1, 2), (3, 1, 2, 2)  # two tokens side by side; one frame of 2 x 2 px
    frames = [np.zeros((1, 2, 2, 3), dtype=np.uint8)] * 2
    view = np.array([[0.0, 1.0], [0.0, 0.5]])  # the second clip is half as attended
    lvef = 10.0 * view[::-1]
    maps = {"view": (view, frames), "lvef": (lvef, frames)}
    result = {"view": {"top": "A4C", "probability": 0.9}, "lvef": 55.25}
    opt = PredictOptions(overlay_alpha=1.0, colormap="gray")  # pixel = heat * 255
    rows = attention_rows(maps, grid, shape, result, opt)
    assert [label for label, _ in rows] == [
        "view clip 1/2: A4C (0.90)",
        "view clip 2/2: A4C (0.90)",
        "lvef clip 1/2: 55.2",
        "lvef clip 2/2: 55.2",
    ]
    peak = [int(frames_[..., 0].max()) for _, frames_ in rows]
    assert peak == [255, 128, 128, 255]
