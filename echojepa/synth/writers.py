"""Write the synthetic echo world in the released layouts of EchoNet-Dynamic, EchoNet-Pediatric and
MIMIC-IV-Echo, so the readers a user points at real downloads read it unchanged.

Layout under `out/` (see `generate`):
- echonet_dynamic/          site A, adult A4C: Videos/*.avi, FileList.csv, VolumeTracings.csv
- echonet_dynamic_siteB/    site B (other scanner settings), same layout, every row Split TEST
- echonet_pediatric/{A4C,PSAX}/  Videos/*.avi, FileList.csv (integer folds), VolumeTracings.csv (X,Y)
- mimic_iv_echo/            files/pXX/pXXXXXXXX/sXXXXXXXX/*.dcm, echo-record-list.csv, labels.csv,
                            view_labels.csv
- manifest.json             written last: its presence means the world is complete
Each dataset root also holds EchoSynthTruth.csv: every latent value (nominal EF/volumes, RVSP, heart
rate, acquisition settings, ED/ES frames), kept out of the released-format files.

The EF column of EchoNet FileLists is *measured*: method of disks on the written VolumeTracings
(20 chords, ED = largest, ES = smallest LV volume among the written frames), like EchoNet's labels.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np

from echojepa.data.tracings import ef_from_volumes, volume_from_rows
from echojepa.io.atomic import atomic_write_text, fsync_dir
from echojepa.io.dicom import UltrasoundRegion, write_dicom
from echojepa.io.video import write_video
from echojepa.synth.acoustics import boxed_geometry, doppler_spectrum, full_frame_geometry, to_uint8
from echojepa.synth.anatomy import VIEWS
from echojepa.synth.config import GENERATOR_VERSION, SynthConfig, load_config
from echojepa.synth.world import (
    Patient,
    SimVideo,
    acquire,
    render_video,
    rng_for,
    sample_patient,
    sample_timing,
    variation_rng,
)

ECHONET_COLUMNS = [
    "FileName",
    "EF",
    "ESV",
    "EDV",
    "FrameHeight",
    "FrameWidth",
    "FPS",
    "NumberOfFrames",
    "Split",
]
PEDIATRIC_COLUMNS = ["FileName", "EF", "Sex", "Age", "Weight", "Height", "Split"]
RECORD_COLUMNS = ["subject_id", "study_id", "acquisition_datetime", "dicom_filepath"]
TRUTH_FILE = "EchoSynthTruth.csv"
MANIFEST = "manifest.json"  # written last: a world without it is incomplete
# Every made-up DICOM identifier contains this marker, so a test can prove none leaks.
PHI_CANARY = "CANARY"


def _f(x: float, nd: int = 4) -> str:
    return f"{x:.{nd}f}"


def _write_csv(path: Path, columns: list[str], rows: Iterable[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow(row)
    atomic_write_text(path, buf.getvalue())


def _truth_row(sv: SimVideo, varied: bool, **extra: object) -> dict:
    """Latent truth of one video (nominal labels, heart, acquisition): EchoSynthTruth.csv."""
    p, h, a = sv.patient, sv.patient.heart, sv.acq
    row = {
        **extra,
        "view": sv.view,
        "population": p.population,
        "ef_nominal": _f(p.ef_nominal),
        "edv_nominal_ml": _f(h.edv_ml),
        "esv_nominal_ml": _f(h.esv_ml),
        "rvsp_mmhg": _f(p.rvsp),
        "tr_velocity_ms": _f(p.tr_velocity_ms),
        "rap_mmhg": _f(p.rap_mmhg, 1),
        "heart_rate_bpm": _f(p.heart_rate_bpm, 2),
        "rv_scale": _f(h.rv_scale),
        "septal_flattening": _f(h.flattening),
        "heart_size": _f(h.size),
        "sex": p.sex,
        "age_years": _f(p.age_years, 2),
        "frames": len(sv.frames),
        "fps": _f(sv.fps, 3),
        "ed_frame": sv.ed_frame,
        "es_frame": sv.es_frame,
        "start_phase": _f(float(sv.state.phase[0])),
        "pixel_cm": _f(sv.geometry.spacing_cm, 6),
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
        row[k] = _f(getattr(a, k))
    if varied:  # columns of the acquisition variation (absent from a world without it)
        for k in ("rotation_deg", "offset_x_cm", "offset_y_cm", "freq_mhz", "foreshortening"):
            row[k] = _f(getattr(a, k))
        row["tgc_db"] = ";".join(_f(x, 2) for x in a.tgc_db)
        row["shadow_db"] = _f(sum(db for _, _, db in a.shadows), 2)
    return row


@dataclass(frozen=True)
class _Ctx:
    cfg: SynthConfig
    seed: int

    @property
    def varied(self) -> bool:
        return self.cfg.variation == "realistic"


def _simulate(
    ctx: _Ctx,
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


def _measure_disks(
    sv: SimVideo, rng: np.random.Generator, jitter: float
) -> tuple[dict[int, np.ndarray], float, float]:
    """Traced rows per frame (ED, ES; rounded as written) and measured EDV/ESV in mL."""
    traced = {}
    for frame in (sv.ed_frame, sv.es_frame):
        traced[frame] = np.round(_tracer_noise(sv.disk_tracing(frame), rng, jitter), 4)
    vols = sorted(volume_from_rows(r) for r in traced.values())
    cm3 = sv.geometry.spacing_cm**3
    return traced, vols[1] * cm3, vols[0] * cm3


# ----------------------------------------------------------------------------------- EchoNet-Dynamic


def _echonet_item(ctx: _Ctx, root: str, dataset: str, site: str, prefix: str, index: int, split: str) -> dict:
    cfg = ctx.cfg
    name = f"{prefix}{index:06d}"
    patient = sample_patient(
        rng_for(ctx.seed, dataset, index, "patient"), cfg.populations["adult"], name, "adult"
    )
    h, w = cfg.echonet.height, cfg.echonet.width
    sv = _simulate(
        ctx, dataset, index, patient, "A4C", site, lambda depth, sector: full_frame_geometry(h, w, depth)
    )
    write_video(Path(root) / "Videos" / f"{name}.avi", sv.frames, sv.fps)
    traced, edv, esv = _measure_disks(
        sv, rng_for(ctx.seed, dataset, index, "tracer"), cfg.video.tracer_jitter
    )
    ef = ef_from_volumes(edv, esv)
    filelist = {
        "FileName": name,
        "EF": _f(ef),
        "ESV": _f(esv),
        "EDV": _f(edv),
        "FrameHeight": h,
        "FrameWidth": w,
        "FPS": int(sv.fps),
        "NumberOfFrames": len(sv.frames),
        "Split": split,
    }
    tracings = [
        {
            "FileName": f"{name}.avi",
            "X1": _f(r[0]),
            "Y1": _f(r[1]),
            "X2": _f(r[2]),
            "Y2": _f(r[3]),
            "Frame": frame,
        }
        for frame in sorted(traced)
        for r in traced[frame]
    ]
    truth = _truth_row(sv, ctx.varied, FileName=name, split=split, site=site, ef_measured=_f(ef))
    return {"filelist": filelist, "tracings": tracings, "truth": truth}


def _write_echonet(
    ctx: _Ctx,
    root: Path,
    dataset: str,
    site: str,
    prefix: str,
    splits: list[tuple[str, int]],
    run: _Runner,
) -> dict[str, int]:
    jobs = []
    index = 0
    for split, count in splits:
        for _ in range(count):
            jobs.append((index, split))
            index += 1
    fn = partial(_echonet_call, ctx, str(root), dataset, site, prefix)
    items = run(dataset, fn, jobs)
    _write_csv(root / "FileList.csv", ECHONET_COLUMNS, (it["filelist"] for it in items))
    _write_csv(
        root / "VolumeTracings.csv",
        ["FileName", "X1", "Y1", "X2", "Y2", "Frame"],
        (r for it in items for r in it["tracings"]),
    )
    _write_truth(root, [it["truth"] for it in items])
    return {split: count for split, count in splits if count}


def _echonet_call(ctx: _Ctx, root: str, dataset: str, site: str, prefix: str, job: tuple[int, str]) -> dict:
    return _echonet_item(ctx, root, dataset, site, prefix, *job)


def _write_truth(root: Path, rows: list[dict]) -> None:
    if not rows:
        return
    columns = list(dict.fromkeys(k for r in rows for k in r))
    _write_csv(root / TRUTH_FILE, columns, rows)


# --------------------------------------------------------------------------------- EchoNet-Pediatric


def _pediatric_item(ctx: _Ctx, root: str, index: int) -> dict:
    cfg = ctx.cfg
    dataset = "echonet_pediatric"
    pid, acc = f"PSYN{index:04d}", f"ACC{index:04d}"
    prng = rng_for(ctx.seed, dataset, index, "patient")
    patient = sample_patient(prng, cfg.populations["pediatric"], pid, "pediatric")
    fold = int(prng.integers(0, cfg.pediatric.folds))
    h, w = cfg.echonet.height, cfg.echonet.width
    out: dict[str, list] = {"filelist": [], "tracings": [], "truth": [], "views": []}
    videos = {}
    for clip, view in ((1, "A4C"), (2, "PSAX")):
        sv = _simulate(
            ctx,
            dataset,
            index,
            patient,
            view,
            "pediatric",
            lambda depth, sector: full_frame_geometry(h, w, depth),
        )
        name = f"{pid}-{acc}-{clip:02d}.avi"
        write_video(Path(root) / view / "Videos" / name, sv.frames, sv.fps)
        videos[view] = (name, sv)
    # the exam's EF (both views carry it) is measured on the A4C by the method of disks
    _, edv, esv = _measure_disks(
        videos["A4C"][1], rng_for(ctx.seed, dataset, index, "tracer"), cfg.video.tracer_jitter
    )
    ef = ef_from_volumes(edv, esv)
    for view, (name, sv) in videos.items():
        out["views"].append(view)
        out["filelist"].append(
            {
                "FileName": name,
                "EF": _f(ef, 2),
                "Sex": patient.sex,
                "Age": _f(patient.age_years, 2),
                "Weight": _f(patient.weight_kg, 1),
                "Height": _f(patient.height_cm, 1),
                "Split": fold,
            }
        )
        out["tracings"].append(
            [
                {"FileName": name, "X": _f(x), "Y": _f(y), "Frame": frame}
                for frame in (sv.ed_frame, sv.es_frame)
                for x, y in np.round(sv.contour(frame), 4)
            ]
        )
        out["truth"].append(
            _truth_row(sv, ctx.varied, FileName=name, fold=fold, ef_measured=_f(ef), accession=acc)
        )
    return out


def _write_pediatric(ctx: _Ctx, root: Path, run: _Runner) -> dict[str, int]:
    items = run(
        "echonet_pediatric", partial(_pediatric_item, ctx, str(root)), list(range(ctx.cfg.pediatric.exams))
    )
    for k, view in enumerate(("A4C", "PSAX")):
        _write_csv(root / view / "FileList.csv", PEDIATRIC_COLUMNS, (it["filelist"][k] for it in items))
        _write_csv(
            root / view / "VolumeTracings.csv",
            ["FileName", "X", "Y", "Frame"],
            (r for it in items for r in it["tracings"][k]),
        )
        _write_truth(root / view, [it["truth"][k] for it in items])
    return {"exams": len(items), "videos": 2 * len(items)}


# ------------------------------------------------------------------------------------- MIMIC-IV-Echo

_EXTRA_VIEWS = [v for v in VIEWS if v not in ("A4C", "PSAX", "PLAX")]


@dataclass(frozen=True)
class _Study:
    subject_id: int
    study_id: int
    subject_index: int
    study_index: int  # global, 0-based
    first_file: int  # running file number (for stills/Doppler extras)
    extras: tuple[str, ...]  # "still" / "doppler" files appended to this study


def _mimic_box(cfg: SynthConfig) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """(tissue box, ECG box) as half-open pixel boxes of the MIMIC-like frame."""
    h, w = cfg.mimic.height, cfg.mimic.width
    mx = max(2, w // 14)
    ecg_h = max(8, h // 10)
    tissue = (mx, max(2, h // 14), w - mx, h - ecg_h - 4)
    ecg = (mx, h - ecg_h - 2, w - mx, h - 2)
    return tissue, ecg


def _ecg_wave(phase: np.ndarray, systole_frac: float) -> np.ndarray:
    """A stylised ECG (P, QRS at end-diastole, T) over cardiac phase."""

    def bump(c: float, wdt: float, amp: float) -> np.ndarray:
        d = np.angle(np.exp(2j * np.pi * (phase - c))) / (2 * np.pi)
        return amp * np.exp(-0.5 * (d / wdt) ** 2)

    return (
        bump(0.0, 0.012, 1.0)
        + bump(-0.02, 0.01, -0.2)
        + bump(0.02, 0.01, -0.3)
        + bump(systole_frac * 0.8, 0.04, 0.3)
        + bump(-0.12, 0.025, 0.15)
    )


def _overlay(cfg: SynthConfig, sv: SimVideo, text_left: str, text_right: str) -> np.ndarray:
    """RGB frames [T, H, W, 3]: grey cine + burnt-in text and an ECG strip with a sweep cursor,
    all outside the cone."""
    from PIL import Image, ImageDraw, ImageFont

    t, h, w = sv.frames.shape
    _, (ex0, ey0, ex1, ey1) = _mimic_box(cfg)
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    draw.text((2, 0), text_left, fill=(230, 230, 230), font=font)
    right_w = draw.textlength(text_right, font=font)
    draw.text((w - 2 - right_w, 0), text_right, fill=(230, 230, 230), font=font)
    static = np.asarray(img).copy()
    # ECG over the video's duration across the strip width
    xs = np.arange(ex0, ex1)
    secs = (xs - ex0) / max(ex1 - ex0 - 1, 1) * (t / sv.fps)
    ph = sv.state.phase[0] + secs * sv.patient.heart_rate_bpm / 60.0
    wave = _ecg_wave(np.mod(ph, 1.0), sv.patient.heart.systole_frac)
    ys = np.clip(np.round(ey1 - 2 - (wave + 0.35) / 1.4 * (ey1 - ey0 - 3)), ey0, ey1 - 1).astype(int)
    static[ys, xs] = (40, 220, 40)
    frames = np.repeat(sv.frames[..., None], 3, axis=-1)  # [T, H, W, 3]
    outside = np.ones((h, w), dtype=bool)
    outside[sv.frames.max(0) > 0] = False
    frames[:, outside] = static[outside]
    for k in range(t):  # sweep cursor at this frame's time
        x = ex0 + int(round(k / max(t - 1, 1) * (ex1 - ex0 - 1)))
        frames[k, ey0:ey1, x] = (230, 230, 60)
    return frames


def _identifiers(rng: np.random.Generator, subject_index: int, when: datetime) -> dict[str, str]:
    birth = datetime(1930, 1, 1) + timedelta(days=int(rng.integers(0, 365 * 60)))
    return {
        "PatientName": f"{PHI_CANARY}^PATIENT{subject_index:05d}",
        "PatientID": f"{PHI_CANARY}-ID-{int(rng.integers(0, 16**8)):08X}",
        "PatientBirthDate": birth.strftime("%Y%m%d"),
        "AccessionNumber": f"{PHI_CANARY}{int(rng.integers(0, 10**7)):07d}",  # SH: at most 16 characters
        "InstitutionName": f"{PHI_CANARY} General Hospital",
        "StudyDate": when.strftime("%Y%m%d"),
        "StudyTime": when.strftime("%H%M%S"),
    }


def _study_views(cfg: SynthConfig, rng: np.random.Generator, study_index: int) -> list[str]:
    """The first study holds every view (so all classes appear); later ones A4C/PSAX/PLAX mostly,
    plus a few others."""
    if study_index == 0:
        return list(VIEWS)
    views = [v for v in ("A4C", "PSAX", "PLAX") if rng.random() < cfg.mimic.core_view_prob]
    k = int(rng.integers(cfg.mimic.extra_views[0], cfg.mimic.extra_views[1] + 1))
    views += [str(v) for v in rng.choice(_EXTRA_VIEWS, size=min(k, len(_EXTRA_VIEWS)), replace=False)]
    return views or ["A4C"]


def _mimic_item(ctx: _Ctx, root: str, study: _Study) -> dict:
    cfg = ctx.cfg
    dataset = "mimic_iv_echo"
    patient = sample_patient(
        rng_for(ctx.seed, dataset, study.subject_index, "patient"),
        cfg.populations["adult"],
        str(study.subject_id),
        "adult",
    )
    srng = rng_for(ctx.seed, dataset, "study", study.study_index)
    when = datetime(2150, 1, 1) + timedelta(seconds=int(srng.integers(0, 40 * 365 * 86400)))
    ids = _identifiers(rng_for(ctx.seed, dataset, "phi", study.subject_index), study.subject_index, when)
    sid = f"{study.subject_id:08d}"
    folder = Path("files") / f"p{sid[:2]}" / f"p{sid}" / f"s{study.study_id:08d}"
    (Path(root) / folder).mkdir(parents=True, exist_ok=True)
    (tissue_box, ecg_box) = _mimic_box(cfg)
    h, w = cfg.mimic.height, cfg.mimic.width
    out: dict[str, list] = {"records": [], "views": [], "truth": []}
    views = _study_views(cfg, srng, study.study_index)
    number = 0
    last: SimVideo | None = None
    for view in views:
        number += 1
        rel = folder / f"{study.study_id:08d}_{number:04d}.dcm"
        sv = _simulate(
            ctx,
            dataset,
            study.study_index * 100 + number,
            patient,
            view,
            "A",
            lambda depth, sector: boxed_geometry(h, w, tissue_box, depth, sector),
        )
        last = sv
        frames = _overlay(cfg, sv, "ECHOSYNTH", f"{sv.acq.depth_cm:.0f}cm {sv.fps:.0f}Hz")
        box = sv.geometry.cone_box(sv.grid)
        regions = [
            UltrasoundRegion(
                *box,
                spatial_format=1,
                data_type=1,
                physical_delta_x=sv.geometry.spacing_cm,
                physical_delta_y=sv.geometry.spacing_cm,
            ),
            UltrasoundRegion(
                *ecg_box, spatial_format=4, data_type=0x0A, physical_delta_x=0.0, physical_delta_y=0.0
            ),
        ]
        ycbcr = srng.random() < cfg.mimic.ycbcr_fraction
        rate_only = srng.random() < cfg.mimic.cine_rate_only_fraction
        write_dicom(
            Path(root) / rel,
            frames,
            sv.fps,
            photometric="YBR_FULL_422" if ycbcr else "RGB",
            regions=regions,
            identifiers=ids,
            kind="cine",
            frame_time_tag=not rate_only,
            cine_rate_tag=rate_only,
            uids_seed=f"{ctx.seed}/{rel.as_posix()}",
        )
        dt = when + timedelta(seconds=30 * number)
        out["records"].append(_record(study, dt, rel))
        out["views"].append({"dicom_filepath": rel.as_posix(), "view": view})
        out["truth"].append(
            _truth_row(
                sv,
                ctx.varied,
                dicom_filepath=rel.as_posix(),
                subject_id=study.subject_id,
                study_id=study.study_id,
                kind="cine",
            )
        )
    for extra in study.extras:
        number += 1
        rel = folder / f"{study.study_id:08d}_{number:04d}.dcm"
        if extra == "still" and last is not None:
            frame = _overlay(cfg, last, "ECHOSYNTH", "STILL")[last.ed_frame : last.ed_frame + 1]
            write_dicom(
                Path(root) / rel,
                frame,
                None,
                photometric="RGB",
                identifiers=ids,
                kind="still",
                uids_seed=f"{ctx.seed}/{rel.as_posix()}",
            )
        else:
            img = doppler_spectrum(
                srng, patient.tr_velocity_ms, patient.heart_rate_bpm, patient.heart.systole_frac, h, w
            )
            rgb = np.repeat(to_uint8(img)[None, ..., None], 3, axis=-1)
            write_dicom(
                Path(root) / rel,
                rgb,
                None,
                photometric="RGB",
                identifiers=ids,
                kind="doppler",
                regions=[UltrasoundRegion(0, 0, w, h, spatial_format=3, data_type=4)],
                uids_seed=f"{ctx.seed}/{rel.as_posix()}",
            )
        out["records"].append(_record(study, when + timedelta(seconds=30 * number), rel))
        out["truth"].append(
            {
                "dicom_filepath": rel.as_posix(),
                "subject_id": study.subject_id,
                "study_id": study.study_id,
                "kind": extra,
            }
        )
    out["label"] = {
        "subject_id": study.subject_id,
        "study_id": study.study_id,
        "lvef": _f(patient.ef_nominal, 1),
        "rvsp": _f(patient.rvsp, 1),
    }
    return out


def _record(study: _Study, when: datetime, rel: Path) -> dict:
    return {
        "subject_id": study.subject_id,
        "study_id": study.study_id,
        "acquisition_datetime": when.strftime("%Y-%m-%d %H:%M:%S"),
        "dicom_filepath": rel.as_posix(),
    }


def _plan_mimic(cfg: SynthConfig, seed: int) -> list[_Study]:
    rng = rng_for(seed, "mimic_iv_echo", "plan")
    studies: list[_Study] = []
    lo, hi = cfg.mimic.studies_per_subject
    for j in range(cfg.mimic.subjects):
        subject_id = cfg.mimic.subject_id_start + 7 * j
        for _ in range(int(rng.integers(lo, hi + 1))):
            k = len(studies)
            studies.append(_Study(subject_id, cfg.mimic.study_id_start + k, j, k, 0, ()))
    extras = ["still"] * cfg.mimic.stills + ["doppler"] * cfg.mimic.doppler
    per: dict[int, list[str]] = {}
    for i, e in enumerate(extras):
        per.setdefault(i % max(len(studies), 1), []).append(e)
    return [replace(s, extras=tuple(per.get(s.study_index, []))) for s in studies]


def _write_mimic(ctx: _Ctx, root: Path, run: _Runner) -> dict[str, int]:
    studies = _plan_mimic(ctx.cfg, ctx.seed)
    items = run("mimic_iv_echo", partial(_mimic_item, ctx, str(root)), studies)
    _write_csv(root / "echo-record-list.csv", RECORD_COLUMNS, (r for it in items for r in it["records"]))
    _write_csv(root / "labels.csv", ["subject_id", "study_id", "lvef", "rvsp"], (it["label"] for it in items))
    _write_csv(root / "view_labels.csv", ["dicom_filepath", "view"], (r for it in items for r in it["views"]))
    _write_truth(root, [r for it in items for r in it["truth"]])
    n_cine = sum(len(it["views"]) for it in items)
    return {
        "subjects": len({s.subject_id for s in studies}),
        "studies": len(studies),
        "cines": n_cine,
        "files": sum(len(it["records"]) for it in items),
    }


# ------------------------------------------------------------------------------------------- driver


class _Runner:
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


def generate(
    out: Path,
    preset: str | SynthConfig = "tiny",
    seed: int = 0,
    preview: Path | None = None,
    progress: bool = True,
) -> dict:
    """Write the synthetic echo world under `out` (see the module docstring); returns the manifest.

    Same (preset, seed) -> the same bytes in every data file (manifest.json's elapsed time aside).
    Every file is written atomically and manifest.json last, so "manifest.json exists" means a complete
    world: an interrupted run leaves none (and removes a stale one first), and the next run rewrites it.
    """
    cfg = preset if isinstance(preset, SynthConfig) else load_config(preset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    if manifest_path.exists():  # rewriting a world: it is incomplete until the new manifest lands
        manifest_path.unlink()
        fsync_dir(out)
    t0 = time.perf_counter()
    ctx = _Ctx(cfg, int(seed))
    run = _Runner(cfg.workers, progress)
    try:
        counts = {
            "echonet_dynamic": _write_echonet(
                ctx,
                out / "echonet_dynamic",
                "echonet_dynamic",
                "A",
                "SYN_A_",
                [("TRAIN", cfg.echonet.train), ("VAL", cfg.echonet.val), ("TEST", cfg.echonet.test)],
                run,
            ),
            "echonet_dynamic_siteB": _write_echonet(
                ctx,
                out / "echonet_dynamic_siteB",
                "echonet_dynamic_siteB",
                "B",
                "SYN_B_",
                [("TEST", cfg.site_b.test)],
                run,
            ),
            "echonet_pediatric": _write_pediatric(ctx, out / "echonet_pediatric", run),
            "mimic_iv_echo": _write_mimic(ctx, out / "mimic_iv_echo", run),
        }
    finally:
        run.close()
    if preview is not None:
        from echojepa.synth.preview import contact_sheet

        contact_sheet(Path(preview), cfg, seed)
    manifest = {
        "generator": GENERATOR_VERSION,
        "preset": cfg.name,
        "variation": cfg.variation,
        "seed": int(seed),
        "counts": counts,
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return manifest
