"""The MIMIC-IV-Echo layout of the synthetic world: DICOM studies (cines with burnt-in text and an ECG strip,
stills, Doppler spectra) under files/pXX/pXXXXXXXX/sXXXXXXXX/, echo-record-list.csv, labels.csv and
view_labels.csv, with made-up identifiers that all carry ``PHI_CANARY``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np

from echojepa.io.dicom import UltrasoundRegion
from echojepa.io.dicom_writer import write_dicom
from echojepa.synth.acoustics import boxed_geometry, doppler_spectrum, to_uint8
from echojepa.synth.anatomy import VIEWS
from echojepa.synth.config import SynthConfig
from echojepa.synth.world import SimVideo, rng_for, sample_patient
from echojepa.synth.writing import (
    JobRunner,
    SynthContext,
    fixed,
    simulate_video,
    truth_row,
    write_csv,
    write_truth,
)

RECORD_COLUMNS = ["subject_id", "study_id", "acquisition_datetime", "dicom_filepath"]


# Every made-up DICOM identifier contains this marker, so a test can prove none leaks.
PHI_CANARY = "CANARY"


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


def _mimic_item(ctx: SynthContext, root: str, study: _Study) -> dict:
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
        sv = simulate_video(
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
            truth_row(
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
        "lvef": fixed(patient.ef_nominal, 1),
        "rvsp": fixed(patient.rvsp, 1),
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


def write_mimic(ctx: SynthContext, root: Path, run: JobRunner) -> dict[str, int]:
    studies = _plan_mimic(ctx.cfg, ctx.seed)
    items = run("mimic_iv_echo", partial(_mimic_item, ctx, str(root)), studies)
    write_csv(root / "echo-record-list.csv", RECORD_COLUMNS, (r for it in items for r in it["records"]))
    write_csv(root / "labels.csv", ["subject_id", "study_id", "lvef", "rvsp"], (it["label"] for it in items))
    write_csv(root / "view_labels.csv", ["dicom_filepath", "view"], (r for it in items for r in it["views"]))
    write_truth(root, [r for it in items for r in it["truth"]])
    n_cine = sum(len(it["views"]) for it in items)
    return {
        "subjects": len({s.subject_id for s in studies}),
        "studies": len(studies),
        "cines": n_cine,
        "files": sum(len(it["records"]) for it in items),
    }
