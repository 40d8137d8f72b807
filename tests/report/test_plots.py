"""Report figures: each writes a valid PNG; readers of predictions CSVs fail loudly on bad files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from echojepa.report import plots

from .helpers import VIEWS, write_class_csv, write_regression_csv


def assert_png(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_bland_altman_and_scatter_from_a_predictions_csv(tmp_path: Path) -> None:
    write_regression_csv(tmp_path / "p.csv")
    pred, target = plots.read_regression_predictions(tmp_path / "p.csv")
    assert pred.shape == target.shape == (30,)
    assert_png(plots.plot_bland_altman(pred, target, tmp_path / "ba.png"))
    assert_png(plots.plot_pred_vs_true(pred, target, tmp_path / "sc.png"))


def test_bland_altman_refuses_unpaired_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="differ in length"):
        plots.plot_bland_altman(np.ones(3), np.ones(4), tmp_path / "x.png")


def test_regression_reader_names_the_file_when_a_column_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("record_id,target\nr0,50\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*'prediction'"):
        plots.read_regression_predictions(path)


def test_class_reader_takes_class_names_from_prob_columns(tmp_path: Path) -> None:
    write_class_csv(tmp_path / "v.csv", n=8)
    target, pred, classes = plots.read_class_predictions(tmp_path / "v.csv")
    assert classes == VIEWS
    assert target.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert pred.min() >= 0 and pred.max() < 4


def test_class_reader_accepts_indices_and_argmaxes_probabilities(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["record_id", "target", "prob_A4C", "prob_PLAX"])
        w.writerow(["r0", "1", "0.2", "0.8"])
        w.writerow(["r1", "A4C", "0.4", "0.6"])
    target, pred, classes = plots.read_class_predictions(path)
    assert (target.tolist(), pred.tolist(), classes) == ([1, 0], [1, 1], ["A4C", "PLAX"])


def test_class_reader_refuses_an_unknown_label(tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text("target,prediction,prob_A4C,prob_A2C\nXYZ,A4C,0.5,0.5\n")
    with pytest.raises(ValueError, match=r"v\.csv.*'XYZ'"):
        plots.read_class_predictions(path)


def test_confusion_matrix_counts_true_rows_predicted_columns() -> None:
    m = plots.confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_confusion_figure_is_a_png_and_checks_class_count(tmp_path: Path) -> None:
    matrix = np.array([[3, 1], [0, 0]])  # an empty row must not produce NaNs or fail
    assert_png(plots.plot_confusion(matrix, ["A4C", "A2C"], tmp_path / "cm.png"))
    with pytest.raises(ValueError, match="class names"):
        plots.plot_confusion(matrix, ["A4C"], tmp_path / "bad.png")


def test_sample_efficiency_curve_with_and_without_sd(tmp_path: Path) -> None:
    series = {
        "echojepa": ([0.01, 0.1, 1.0], [0.57, 0.8, 0.85], [0.01, 0.01, None]),
        "echomae": ([1.0], [0.4], [None]),
    }
    assert_png(plots.plot_sample_efficiency(series, tmp_path / "se.png"))


def test_robustness_and_pediatric_bars_allow_gaps(tmp_path: Path) -> None:
    conditions = [("original", "Original"), ("depth_low", "Depth low")]
    data = {"echojepa": {"original": 5.0, "depth_low": 5.2}, "echomae": {"original": 8.0, "depth_low": None}}
    assert_png(plots.plot_robustness(data, conditions, tmp_path / "rob.png"))
    assert_png(
        plots.plot_pediatric({"echojepa": {"zero_shot": 6.3, "fine_tuned": 5.1}}, tmp_path / "ped.png")
    )


def test_loss_curves_one_panel_per_objective(tmp_path: Path) -> None:
    curves = {"jepa": ([0, 1, 2], [1.0, 0.8, 0.7]), "mae": ([0, 1, 2], [0.9, 0.5, 0.4])}
    width2, _ = assert_png(plots.plot_loss_curves(curves, tmp_path / "loss2.png"))
    width1, _ = assert_png(plots.plot_loss_curves({"jepa": curves["jepa"]}, tmp_path / "loss1.png"))
    assert width2 > width1
    with pytest.raises(ValueError, match="2 steps but 3 values"):
        plots.plot_loss_curves({"jepa": ([0, 1], [1.0, 0.9, 0.8])}, tmp_path / "bad.png")


def test_attention_overlay_on_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (8, 32, 40, 3), dtype=np.uint8)  # [T, H, W, 3]
    attention = rng.random((4, 2, 3))  # [T / tubelet, h, w]
    assert_png(plots.plot_attention(frames, attention, tmp_path / "attn.png", n_frames=3))


@pytest.mark.parametrize(
    ("frames", "attention", "reason"),
    [
        (np.zeros((4, 8, 8, 3), np.float32), np.zeros((4, 2, 2)), "uint8"),
        (np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 4)), r"\[T, h, w\]"),
        (np.zeros((4, 8, 8, 3), np.uint8), np.full((4, 2, 2), np.nan), "non-finite"),
    ],
)
def test_attention_refuses_bad_shapes_and_values(tmp_path: Path, frames, attention, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        plots.plot_attention(frames, attention, tmp_path / "x.png")
