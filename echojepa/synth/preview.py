"""A contact sheet of the synthetic world: one frame of every view and the LV volume curve."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from echojepa.io.atomic import atomic_write
from echojepa.synth.acoustics import full_frame_geometry
from echojepa.synth.anatomy import VIEWS
from echojepa.synth.config import SynthConfig
from echojepa.synth.world import acquire, render_video, rng_for, sample_patient, sample_timing, variation_rng


def contact_sheet(path: Path, cfg: SynthConfig, seed: int = 0, size: int = 112) -> None:
    """PNG: each view of one adult (site A) and one child, plus the adult's LV volume over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("adult", "A"), ("pediatric", "pediatric")]
    fig, axes = plt.subplots(len(rows), len(VIEWS) + 1, figsize=(2.2 * (len(VIEWS) + 1), 2.4 * len(rows)))
    for i, (pop, site) in enumerate(rows):
        patient = sample_patient(rng_for(seed, "preview", pop), cfg.populations[pop], f"preview-{pop}", pop)
        for j, view in enumerate(VIEWS):
            rng = rng_for(seed, "preview", pop, view)
            vrng = variation_rng(cfg, seed, "preview", pop, view)
            acq, shown, fps_min = acquire(rng, cfg, site, patient, view, vrng)
            n, fps, start = sample_timing(rng, cfg.video, acq.fps, fps_min, shown.heart_rate_bpm)
            acq = replace(acq, fps=fps)
            sv = render_video(
                shown,
                view,
                acq,
                full_frame_geometry(size, size, acq.depth_cm),
                n,
                start,
                rng,
                cfg.tissue,
                cfg.video,
            )
            ax = axes[i, j]
            ax.imshow(sv.frames[sv.ed_frame], cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{view} ({pop[:5]})", fontsize=8)
            ax.axis("off")
            if view == "A4C":
                t = np.arange(n) / fps
                ax_v = axes[i, -1]
                ax_v.plot(t, sv.state.volume_ml, "-o", ms=2)
                ax_v.plot(t[sv.ed_frame], sv.state.volume_ml[sv.ed_frame], "rs", label="ED")
                ax_v.plot(t[sv.es_frame], sv.state.volume_ml[sv.es_frame], "bs", label="ES")
                ax_v.set_title(f"LV volume, EF {patient.ef_nominal:.0f}%", fontsize=8)
                ax_v.set_xlabel("s", fontsize=7)
                ax_v.set_ylabel("mL", fontsize=7)
                ax_v.tick_params(labelsize=6)
                ax_v.legend(fontsize=6)
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    finally:
        plt.close(fig)
