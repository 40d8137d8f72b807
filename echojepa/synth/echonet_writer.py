"""The EchoNet-Dynamic (site A and site B) and EchoNet-Pediatric layouts of the synthetic world: AVI videos,
FileList.csv and VolumeTracings.csv, with the EF measured by the method of disks on the written tracings."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from echojepa.data.tracings import ef_from_volumes
from echojepa.io.video import write_video
from echojepa.synth.acoustics import full_frame_geometry
from echojepa.synth.world import rng_for, sample_patient
from echojepa.synth.writing import (
    JobRunner,
    SynthContext,
    fixed,
    measure_disks,
    simulate_video,
    truth_row,
    write_csv,
    write_truth,
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


def _echonet_item(
    ctx: SynthContext, root: str, dataset: str, site: str, prefix: str, index: int, split: str
) -> dict:
    cfg = ctx.cfg
    name = f"{prefix}{index:06d}"
    patient = sample_patient(
        rng_for(ctx.seed, dataset, index, "patient"), cfg.populations["adult"], name, "adult"
    )
    h, w = cfg.echonet.height, cfg.echonet.width
    sv = simulate_video(
        ctx, dataset, index, patient, "A4C", site, lambda depth, sector: full_frame_geometry(h, w, depth)
    )
    write_video(Path(root) / "Videos" / f"{name}.avi", sv.frames, sv.fps)
    traced, edv, esv = measure_disks(sv, rng_for(ctx.seed, dataset, index, "tracer"), cfg.video.tracer_jitter)
    ef = ef_from_volumes(edv, esv)
    filelist = {
        "FileName": name,
        "EF": fixed(ef),
        "ESV": fixed(esv),
        "EDV": fixed(edv),
        "FrameHeight": h,
        "FrameWidth": w,
        "FPS": int(sv.fps),
        "NumberOfFrames": len(sv.frames),
        "Split": split,
    }
    tracings = [
        {
            "FileName": f"{name}.avi",
            "X1": fixed(r[0]),
            "Y1": fixed(r[1]),
            "X2": fixed(r[2]),
            "Y2": fixed(r[3]),
            "Frame": frame,
        }
        for frame in sorted(traced)
        for r in traced[frame]
    ]
    truth = truth_row(sv, ctx.varied, FileName=name, split=split, site=site, ef_measured=fixed(ef))
    return {"filelist": filelist, "tracings": tracings, "truth": truth}


def write_echonet(
    ctx: SynthContext,
    root: Path,
    dataset: str,
    site: str,
    prefix: str,
    splits: list[tuple[str, int]],
    run: JobRunner,
) -> dict[str, int]:
    jobs = []
    index = 0
    for split, count in splits:
        for _ in range(count):
            jobs.append((index, split))
            index += 1
    fn = partial(_echonet_call, ctx, str(root), dataset, site, prefix)
    items = run(dataset, fn, jobs)
    write_csv(root / "FileList.csv", ECHONET_COLUMNS, (it["filelist"] for it in items))
    write_csv(
        root / "VolumeTracings.csv",
        ["FileName", "X1", "Y1", "X2", "Y2", "Frame"],
        (r for it in items for r in it["tracings"]),
    )
    write_truth(root, [it["truth"] for it in items])
    return {split: count for split, count in splits if count}


def _echonet_call(
    ctx: SynthContext, root: str, dataset: str, site: str, prefix: str, job: tuple[int, str]
) -> dict:
    return _echonet_item(ctx, root, dataset, site, prefix, *job)


def _pediatric_item(ctx: SynthContext, root: str, index: int) -> dict:
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
        sv = simulate_video(
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
    _, edv, esv = measure_disks(
        videos["A4C"][1], rng_for(ctx.seed, dataset, index, "tracer"), cfg.video.tracer_jitter
    )
    ef = ef_from_volumes(edv, esv)
    for view, (name, sv) in videos.items():
        out["views"].append(view)
        out["filelist"].append(
            {
                "FileName": name,
                "EF": fixed(ef, 2),
                "Sex": patient.sex,
                "Age": fixed(patient.age_years, 2),
                "Weight": fixed(patient.weight_kg, 1),
                "Height": fixed(patient.height_cm, 1),
                "Split": fold,
            }
        )
        out["tracings"].append(
            [
                {"FileName": name, "X": fixed(x), "Y": fixed(y), "Frame": frame}
                for frame in (sv.ed_frame, sv.es_frame)
                for x, y in np.round(sv.contour(frame), 4)
            ]
        )
        out["truth"].append(
            truth_row(sv, ctx.varied, FileName=name, fold=fold, ef_measured=fixed(ef), accession=acc)
        )
    return out


def write_pediatric(ctx: SynthContext, root: Path, run: JobRunner) -> dict[str, int]:
    items = run(
        "echonet_pediatric", partial(_pediatric_item, ctx, str(root)), list(range(ctx.cfg.pediatric.exams))
    )
    for k, view in enumerate(("A4C", "PSAX")):
        write_csv(root / view / "FileList.csv", PEDIATRIC_COLUMNS, (it["filelist"][k] for it in items))
        write_csv(
            root / view / "VolumeTracings.csv",
            ["FileName", "X", "Y", "Frame"],
            (r for it in items for r in it["tracings"][k]),
        )
        write_truth(root / view, [it["truth"][k] for it in items])
    return {"exams": len(items), "videos": 2 * len(items)}
