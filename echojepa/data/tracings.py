"""EchoNet-style LV tracings: method-of-disks volumes and EF.

`VolumeTracings.csv` (EchoNet-Dynamic) holds, per video and traced frame, rows `X1,Y1,X2,Y2`: the
first row is the LV long axis, the following rows are the disk chords perpendicular to it (20 in
the released data). Single-plane method of disks: V = (pi/4) * sum_i d_i^2 * (L / n).
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict

import numpy as np

_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")


def disk_volume(long_axis: tuple[float, float, float, float] | np.ndarray, chords: np.ndarray) -> float:
    """Method-of-disks volume (cubic units of the coordinates) from the long axis and n chords [n, 4]."""
    axis = np.asarray(long_axis, dtype=np.float64).reshape(4)
    c = np.asarray(chords, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 4 or c.shape[0] == 0:
        raise ValueError(f"chords must be [n, 4] with n >= 1, got shape {c.shape}")
    length = float(np.hypot(axis[2] - axis[0], axis[3] - axis[1]))
    d2 = (c[:, 2] - c[:, 0]) ** 2 + (c[:, 3] - c[:, 1]) ** 2
    return float(np.pi / 4.0 * d2.sum() * length / c.shape[0])


def ef_from_volumes(edv: float, esv: float) -> float:
    """Ejection fraction in percent: 100 * (EDV - ESV) / EDV."""
    if not edv > 0:
        raise ValueError(f"EDV must be positive, got {edv}")
    return 100.0 * (edv - esv) / edv


def volume_from_rows(rows: np.ndarray) -> float:
    """One traced frame's rows [1 + n, 4] (long axis first) -> disk volume."""
    r = np.asarray(rows, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] != 4:
        raise ValueError(f"a traced frame needs the long axis plus >= 1 chord as [n, 4], got {r.shape}")
    return disk_volume(r[0], r[1:])


def ef_from_tracings(rows_by_frame: dict[int, np.ndarray]) -> float:
    """EF from two traced frames (frame -> rows [1 + n, 4]); ED = the frame with the larger volume."""
    if len(rows_by_frame) != 2:
        raise ValueError(f"need exactly two traced frames (ED and ES), got {sorted(rows_by_frame)}")
    vols = sorted(volume_from_rows(r) for r in rows_by_frame.values())
    return ef_from_volumes(vols[1], vols[0])


def read_volume_tracings(csv_path: str | os.PathLike) -> dict[str, dict[int, np.ndarray]]:
    """EchoNet-Dynamic VolumeTracings.csv -> {FileName: {frame: rows [n, 4] in file order}}."""
    out: dict[str, dict[int, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: VolumeTracings.csv lacks columns {missing}")
        for line_no, row in enumerate(reader, start=2):
            try:
                frame = int(float(row["Frame"]))
                vals = [float(row[k]) for k in ("X1", "Y1", "X2", "Y2")]
            except (TypeError, ValueError) as e:
                raise ValueError(f"{csv_path}: line {line_no}: bad tracing row {row!r} ({e})") from None
            out[row["FileName"]][frame].append(vals)
    return {name: {fr: np.asarray(rows) for fr, rows in frames.items()} for name, frames in out.items()}
