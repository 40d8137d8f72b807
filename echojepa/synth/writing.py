"""What every synthetic dataset writer shares: the generation context, one rendered video, the tracer's
method-of-disks measurement, CSV and truth files, and the job runner (in process or a process pool)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from echojepa.data.tracings import volume_from_rows
from echojepa.io.atomic import atomic_write_text
from echojepa.synth.config import SynthConfig
from echojepa.synth.world import (
    Patient,
    SimVideo,
    acquire,
    render_video,
    rng_for,
    sample_timing,
    variation_rng,
)

TRUTH_FILE = "EchoSynthTruth.csv"


def fixed(x: float, nd: int = 4) -> str:
    """``x`` as fixed-point text with ``nd`` decimals: how every number in the CSV files is written."""
    return f"{x:.{nd}f}"


def write_csv(path: Path, columns: list[str], rows: Iterable[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow(row)
    atomic_write_text(path, buf.getvalue())


def truth_row(sv: SimVideo, varied: bool, **extra: object) -> dict:
    """Latent truth of one video (nominal labels, heart, acquisition): EchoSynthTruth.csv."""
    p, h, a = sv.patient, sv.patient.heart, sv.acq
    row = {
        **extra,
        "view": sv.view,
        "population": p.population,
        "ef_nominal": fixed(p.ef_nominal),
        "edv_nominal_ml": fixed(h.edv_ml),
        "esv_nominal_ml": fixed(h.esv_ml),
        "rvsp_mmhg": fixed(p.rvsp),
        "tr_velocity_ms": fixed(p.tr_velocity_ms),
        "rap_mmhg": fixed(p.rap_mmhg, 1),
        "heart_rate_bpm": fixed(p.heart_rate_bpm, 2),
        "rv_scale": fixed(h.rv_scale),
        "septal_flattening": fixed(h.flattening),
        "heart_size": fixed(h.size),
        "sex": p.sex,
        "age_years": fixed(p.age_years, 2),
        "frames": len(sv.frames),
        "fps": fixed(sv.fps, 3),
        "ed_frame": sv.ed_frame,
        "es_frame": sv.es_frame,
        "start_phase": fixed(float(sv.state.phase[0])),
        "pixel_cm": fixed(sv.geometry.spacing_cm, 6),
    }
    for k in (
        "depth_cm",
        "sector_deg",
        "angle_deg",
        "gain_db",
        "dynamic_range_db",
        "noise_db",
        "psf_axial_cm",
        "psf_lateral_deg",
        "gamma",
        "tgc_residual_db_cm",
    ):
        row[k] = fixed(getattr(a, k))
    if varied:  # columns of the acquisition variation (absent from a world without it)
        for k in ("rotation_deg", "offset_x_cm", "offset_y_cm", "freq_mhz", "foreshortening"):
            row[k] = fixed(getattr(a, k))
        row["tgc_db"] = ";".join(fixed(x, 2) for x in a.tgc_db)
        row["shadow_db"] = fixed(sum(db for _, _, db in a.shadows), 2)
    return row


@dataclass(frozen=True)
class SynthContext:
    cfg: SynthConfig
    seed: int

    @property
    def varied(self) -> bool:
        return self.cfg.variation == "realistic"


def simulate_video(
    ctx: SynthContext,
    dataset: str,
    index: int,
    patient: Patient,
    view: str,
    site: str,
    geometry_for: Callable[[float, float], object],
) -> SimVideo:
    """Render one video; its Generators depend only on (seed, dataset, index, view)."""
    cfg = ctx.cfg
    rng = rng_for(ctx.seed, dataset, index, view)
    vrng = variation_rng(cfg, ctx.seed, dataset, index, view)
    acq, patient, fps_min = acquire(rng, cfg, site, patient, view, vrng)
    n, fps, start = sample_timing(rng, cfg.video, acq.fps, fps_min, patient.heart_rate_bpm)
    acq = replace(acq, fps=float(round(fps)))  # containers and FileLists carry whole fps, like EchoNet
    geometry = geometry_for(acq.depth_cm, acq.sector_deg)
    return render_video(patient, view, acq, geometry, n, start, rng, cfg.tissue, cfg.video)


def _tracer_noise(rows: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """A human tracer's chord-length error: scale each chord about its midpoint (axis untouched)."""
    if jitter <= 0:
        return rows
    out = rows.copy()
    mid = (rows[1:, :2] + rows[1:, 2:]) / 2
    k = 1.0 + jitter * rng.standard_normal(len(rows) - 1)[:, None]
    out[1:, :2] = mid + (rows[1:, :2] - mid) * k
    out[1:, 2:] = mid + (rows[1:, 2:] - mid) * k
    return out


def measure_disks(
    sv: SimVideo, rng: np.random.Generator, jitter: float
) -> tuple[dict[int, np.ndarray], float, float]:
    """Traced rows per frame (ED, ES; rounded as written) and measured EDV/ESV in mL."""
    traced = {}
    for frame in (sv.ed_frame, sv.es_frame):
        traced[frame] = np.round(_tracer_noise(sv.disk_tracing(frame), rng, jitter), 4)
    vols = sorted(volume_from_rows(r) for r in traced.values())
    cm3 = sv.geometry.spacing_cm**3
    return traced, vols[1] * cm3, vols[0] * cm3


def write_truth(root: Path, rows: list[dict]) -> None:
    if not rows:
        return
    columns = list(dict.fromkeys(k for r in rows for k in r))
    write_csv(root / TRUTH_FILE, columns, rows)


class JobRunner:
    """Maps a job function over items (in order), in this process or a pool, reporting progress."""

    def __init__(self, workers: int, progress: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.pool = ProcessPoolExecutor(workers) if workers > 1 else None
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), disable=not progress,
        )  # fmt: skip
        self.bar.start()

    def __call__(self, name: str, fn: Callable, items: list) -> list:
        out = []
        it = self.pool.map(fn, items, chunksize=4) if self.pool else map(fn, items)
        task = self.bar.add_task(f"synth {name}", total=len(items))
        for res in it:
            out.append(res)
            self.bar.advance(task)
        return out

    def close(self) -> None:
        self.bar.stop()
        if self.pool:
            self.pool.shutdown()
