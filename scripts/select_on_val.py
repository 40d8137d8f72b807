#!/usr/bin/env python3
"""Choose probe settings from VALIDATION numbers only: train heads, print validation metrics, never test.

    .venv/bin/python scripts/select_on_val.py --task lvef --task rvsp \\
        --backbone pixel_stats --backbone random_vit \\
        --vary probe.task_depth.lvef=1,2,4 --vary probe.min_steps=0,200 \\
        --seeds 0 1 --preset demo --world-seed 0 --root /tmp/select --out /tmp/select/val.json

For every task x backbone x combination of the ``--vary`` values x probe seed it trains the probe of
``--probe`` (default attentive_cpu) on the train split of the synthetic world (written under --root when
missing) and scores every head on the validation split (echojepa.probe.runner.validate_probe: the test
split is never read, not even extracted). Printed per row: the validation metric of the head chosen on
validation, the train-mean / majority floor on the same validation items, optimizer steps and the
probe's trainable parameters; then the mean over seeds per setting. ``--set`` adds fixed overrides
(e.g. ``protocol.multiview_conditions=[multi_view]``). Settings chosen from these numbers go into
conf/ with a comment naming the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra import compose, initialize_config_dir  # noqa: E402

from echojepa.config import to_plain  # noqa: E402
from echojepa.io.atomic import atomic_write_text  # noqa: E402
from echojepa.paths import CONF_DIR  # noqa: E402
from echojepa.probe.runner import validate_probe  # noqa: E402


def _varied(specs: list[str]) -> list[list[str]]:
    """['a=1,2', 'b=x'] -> every combination as override lists [['a=1', 'b=x'], ['a=2', 'b=x']];
    a list value stays whole ('c=[1,1],[2,2]' has two values)."""
    axes = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not values:
            raise SystemExit(f"--vary {spec!r}: expected key=v1,v2,...")
        # split on commas outside brackets, so a list value ([2,2]) stays one value
        axes.append([f"{key}={v}" for v in re.split(r",(?![^\[]*\])", values)])
    return [list(c) for c in itertools.product(*axes)] if axes else [[]]


def _config(args: argparse.Namespace, task: str, backbone: str, setting: list[str], seed: int) -> dict:
    root = args.root.resolve()
    overrides = [
        f"task={task}", f"backbone={backbone}", f"probe={args.probe}", "protocol=standard",
        f"synth.preset={args.preset}", f"synth.seed={args.world_seed}", f"paths.data_root={root / 'data'}",
        f"cache_dir={root / 'cache'}", f"store={root / 'store'}", "mlflow.enabled=false", "num_workers=0",
        f"seed={seed}", *args.set, *setting,
    ]  # fmt: skip
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_plain(compose("evaluate", overrides=overrides))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", action="append", required=True, help="conf/task/ name (repeatable)")
    ap.add_argument("--backbone", action="append", required=True, help="conf/backbone/ name (repeatable)")
    ap.add_argument("--probe", default="attentive_cpu", help="conf/probe/ name")
    ap.add_argument("--vary", action="append", default=[], help="key=v1,v2,... (all combinations)")
    ap.add_argument("--set", action="append", default=[], help="a fixed override (repeatable)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="probe seeds (init, data order)")
    ap.add_argument("--preset", default="demo", help="conf/synth/ world preset")
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument("--root", type=Path, default=Path("runs/select_on_val"))
    ap.add_argument("--out", type=Path, default=None, help="write every row as JSON here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    rows: list[dict[str, Any]] = []
    for task, backbone, setting, seed in itertools.product(
        args.task, args.backbone, _varied(args.vary), args.seeds
    ):
        for summary in validate_probe(_config(args, task, backbone, setting, seed)):
            row = {"task": task, "backbone": backbone, "setting": " ".join(setting), "seed": seed, **summary}
            rows.append(row)
            print(
                f"{task:5s} {backbone:12s} {row['setting']:40s} seed {seed} {row['condition']:12s} "
                f"val {row['metric']} {row['chosen']:.4f} (floor {row['trivial']:.4f}; heads "
                f"{', '.join(f'{v:.3f}' for v in row['heads'])}) steps {row['steps']} "
                f"params {row['probe'].get('trainable_params')}",
                flush=True,
            )
    means: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        means[(r["task"], r["backbone"], r["condition"], r["setting"], r["metric"])].append(r["chosen"])
    print("\nmean over seeds (validation split only):")
    for (task, backbone, condition, setting, metric), vals in means.items():
        mean = sum(vals) / len(vals)
        print(f"  {task:5s} {backbone:12s} {condition:12s} {setting:40s} {metric} {mean:.4f} n={len(vals)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
