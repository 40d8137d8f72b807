#!/usr/bin/env python3
"""Validation-only probe runs on a study's own backbones (its pretrained encoders too), with the backbone's
seed and the probe's seed set apart: what a study-level probe setting is chosen from. Never reads test.

    .venv/bin/python scripts/study_val_probe.py --study science --root science --task lvef \\
        --run random_vit:1:1 --run pixel_stats:0:0 --set probe.aug_views=4 --out val.json

Each ``--run backbone:backbone_seed:probe_seed`` composes the study's evaluation config for that backbone
at that seed (Study.evaluation_cfg: the study's probe overrides, its world, the seed's pretraining run or
random draw), sets the probe seed, and trains and scores the probe on the validation split only
(echojepa.probe.runner.validate_probe). ``--set key=json`` overrides one key of the composed config
(dotted path, JSON value). Printed per run: the chosen head's validation metric, every head's, the train
mean's, and the validation curve (each pass's metric and mean train loss per head).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from echojepa.io.atomic import atomic_write_text  # noqa: E402
from echojepa.pipeline import Study  # noqa: E402
from echojepa.probe.runner import validate_probe  # noqa: E402


def _set(cfg: dict[str, Any], spec: str) -> None:
    key, sep, value = spec.partition("=")
    if not sep:
        raise SystemExit(f"--set {spec!r}: expected key=value")
    *parents, leaf = key.split(".")
    node = cfg
    for k in parents:
        node = node.setdefault(k, {})
    node[leaf] = json.loads(value)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", required=True, help="conf/study/ name")
    ap.add_argument("--root", type=Path, required=True, help="the study's root (its world and runs)")
    ap.add_argument("--task", required=True)
    ap.add_argument("--protocol", default="standard")
    ap.add_argument("--run", action="append", required=True, help="backbone:backbone_seed:probe_seed")
    ap.add_argument("--set", action="append", default=[], help="key=json, on the composed config")
    ap.add_argument("--store", type=Path, default=Path("runs/study_val_probe"), help="probe checkpoints")
    ap.add_argument("--out", type=Path, default=None, help="write every row as JSON here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    study = Study(args.study, args.root)
    rows = []
    for spec in args.run:
        backbone, bseed, pseed = spec.split(":")
        cfg = study.evaluation_cfg(backbone, args.task, args.protocol, int(bseed))
        cfg.update(seed=int(pseed), store=str(args.store.resolve()))
        cfg["mlflow"]["enabled"] = False
        for s in args.set:
            _set(cfg, s)
        for summary in validate_probe(cfg):
            row = {"backbone": backbone, "backbone_seed": int(bseed), "probe_seed": int(pseed),
                   "set": args.set, **summary}  # fmt: skip
            rows.append(row)
            heads = ", ".join(f"{v:.3f}" for v in summary["heads"])
            print(f"{backbone} seed {bseed} probe seed {pseed} {' '.join(args.set)} {summary['condition']}: "
                  f"val {summary['metric']} {summary['chosen']:.3f} (heads {heads}; train mean "
                  f"{summary['trivial']:.3f})", flush=True)  # fmt: skip
            for h in summary["history"]:
                loss, val = (", ".join(f"{x:.3f}" for x in h[k]) for k in ("train_loss", "val"))
                print(f"  epoch {h['epoch']:3d} train loss {loss}  val {val}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
