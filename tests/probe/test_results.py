"""Evaluation records: the predictions CSV keeps what the probe produced."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echojepa.probe.results import write_record
from echojepa.report.paired import read_predictions


def test_the_predictions_csv_reads_back_every_float32_probability_exactly(tmp_path: Path) -> None:
    # two classes 1 ulp apart in float32: 6 digits tied them (the science study's 1 % view CSV)
    close = np.float32(0.3993007)
    probs = np.array([[0.2013985, close, np.nextafter(close, np.float32(1))]], dtype=np.float32)
    path = write_record(
        tmp_path, backbone="b", backbone_kind="random_init", task="view", protocol="standard",
        condition="internal", dataset="d", seed=0, metrics={}, chosen=None, config={},
        predictions={"id": ["r0"], "patient": ["p"], "target": ["PSAX"], "prediction": ["PSAX"],
                     **{f"prob_{c}": [probs[0, i]] for i, c in enumerate(("A4C", "PLAX", "PSAX"))}},
    )  # fmt: skip
    back = read_predictions(next(path.parent.glob("*.predictions.csv")))
    np.testing.assert_array_equal(back.output.astype(np.float32), probs)
    assert back.output.argmax(axis=1).tolist() == [2]
