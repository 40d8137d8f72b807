"""How fast EchoSynth renders: `python -m echojepa.synth.bench` prints clips/s per view and size."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from echojepa.synth.acoustics import full_frame_geometry
from echojepa.synth.anatomy import VIEWS
from echojepa.synth.config import SynthConfig, load_config
from echojepa.synth.world import (
    acquire,
    render_video,
    rng_for,
    sample_acquisition,
    sample_patient,
    variation_rng,
)


def benchmark(
    n: int = 40,
    frames: int = 32,
    size: int = 112,
    preset: str | SynthConfig = "tiny",
    views: tuple[str, ...] = VIEWS,
    verbose: bool = True,
) -> dict[str, float]:
    """Render n clips (cycling through `views`) in this process; returns and prints clips/s.

    Rendering only (anatomy, speckle, PSF, log compression, scan conversion), not file encoding;
    with the preset's acquisition variation (`variation`), at a fixed 50 fps.
    """
    cfg = preset if isinstance(preset, SynthConfig) else load_config(preset)
    pop = cfg.populations["adult"]
    render_video(  # warm-up: imports and first-call allocations
        sample_patient(rng_for(0, "bench"), pop, "w", "adult"),
        "A4C",
        replace(sample_acquisition(rng_for(0, "bench"), cfg.sites["A"], 1.0, 1.0), fps=50.0),
        full_frame_geometry(size, size, 15.0),
        4,
        0.0,
        rng_for(0, "bench"),
        cfg.tissue,
        cfg.video,
    )
    t0 = time.perf_counter()
    for i in range(n):
        view = views[i % len(views)]
        rng = rng_for(0, "bench", i)
        patient = sample_patient(rng, pop, f"b{i}", "adult")
        acq, patient, _ = acquire(rng, cfg, "A", patient, view, variation_rng(cfg, 0, "bench", i))
        acq = replace(acq, fps=50.0)
        render_video(
            patient,
            view,
            acq,
            full_frame_geometry(size, size, acq.depth_cm),
            frames,
            0.0,
            rng,
            cfg.tissue,
            cfg.video,
        )
    elapsed = time.perf_counter() - t0
    res = {
        "clips": n,
        "frames": frames,
        "size": size,
        "seconds": elapsed,
        "clips_per_s": n / elapsed,
        "frames_per_s": n * frames / elapsed,
    }
    if verbose:
        print(
            f"EchoSynth render: {n} clips of {frames} frames at {size}x{size}: {elapsed:.2f} s, "
            f"{res['clips_per_s']:.1f} clips/s, {res['frames_per_s']:.0f} frames/s (one process)"
        )
    return res


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m echojepa.synth.bench", description=__doc__)
    p.add_argument("-n", type=int, default=70)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--preset", default="demo")
    args = p.parse_args(argv)
    benchmark(args.n, args.frames, args.size, args.preset)
    for view in VIEWS:
        r = benchmark(max(7, args.n // 7), args.frames, args.size, args.preset, views=(view,), verbose=False)
        print(f"  {view:>9}: {r['clips_per_s']:.1f} clips/s")


if __name__ == "__main__":
    main()
