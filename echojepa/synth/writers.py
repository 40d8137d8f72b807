"""Write the synthetic echo world in the released layouts of EchoNet-Dynamic, EchoNet-Pediatric and
MIMIC-IV-Echo, so the readers a user points at real downloads read it unchanged.

Layout under `out/` (see `generate`; the writers are ``echojepa.synth.echonet_writer`` and
``echojepa.synth.mimic_writer``):
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

import json
import time
from pathlib import Path

from echojepa.io.atomic import atomic_write_text, fsync_dir
from echojepa.synth.config import GENERATOR_VERSION, SynthConfig, load_config
from echojepa.synth.echonet_writer import write_echonet, write_pediatric
from echojepa.synth.mimic_writer import write_mimic
from echojepa.synth.writing import JobRunner, SynthContext

MANIFEST = "manifest.json"  # written last: a world without it is incomplete


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
    ctx = SynthContext(cfg, int(seed))
    run = JobRunner(cfg.workers, progress)
    try:
        counts = {
            "echonet_dynamic": write_echonet(
                ctx,
                out / "echonet_dynamic",
                "echonet_dynamic",
                "A",
                "SYN_A_",
                [("TRAIN", cfg.echonet.train), ("VAL", cfg.echonet.val), ("TEST", cfg.echonet.test)],
                run,
            ),
            "echonet_dynamic_siteB": write_echonet(
                ctx,
                out / "echonet_dynamic_siteB",
                "echonet_dynamic_siteB",
                "B",
                "SYN_B_",
                [("TEST", cfg.site_b.test)],
                run,
            ),
            "echonet_pediatric": write_pediatric(ctx, out / "echonet_pediatric", run),
            "mimic_iv_echo": write_mimic(ctx, out / "mimic_iv_echo", run),
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
