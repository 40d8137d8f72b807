#!/usr/bin/env python3
"""Measure the beats-trivial margins of tests/probe/test_beats_trivial.py on world seeds the test does
not use, so the margins it asserts rest on seeds nobody tuned on.

    .venv/bin/python scripts/trivial_margins.py --seeds 1 2 3 --root /tmp/margins \\
        --out results/beats_trivial/margins.json

For every world seed: the `small` EchoSynth world (written under --root when missing), then the test's
exact setting per task (pixel statistics, probe attentive_cpu at its own training length, protocol
standard, internal test split; RVSP's multi-view condition), and the probe's metric against the trivial
row of the same run (train mean for LVEF and RVSP, majority class for view); ``--task`` picks tasks.
Printed and written: probe, trivial, and the relative margin
(trivial - probe) / trivial for MAE, (probe - trivial) / trivial for accuracy.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra import compose, initialize_config_dir  # noqa: E402

from echojepa.config import to_plain  # noqa: E402
from echojepa.io.atomic import atomic_write_text  # noqa: E402
from echojepa.paths import CONF_DIR  # noqa: E402
from echojepa.probe.runner import run_probe  # noqa: E402
from echojepa.synth.ensure import ensure_world  # noqa: E402

# task -> (metric, sign of "better", the test condition read); RVSP: the multi-view condition only
TASKS = {
    "lvef": ("mae", -1.0, "internal"),
    "view": ("accuracy", 1.0, "internal"),
    "rvsp": ("mae", -1.0, "multi_view"),
}
EXTRA = {"rvsp": ["protocol.multiview_conditions=[multi_view]"]}  # the condition the test asserts on


def _config(world: Path, store: Path, task: str) -> dict:
    overrides = [f"task={task}", "protocol=standard", "backbone=pixel_stats", "probe=attentive_cpu",
                 "mlflow.enabled=false", "bootstrap.n_resamples=200", "num_workers=0",
                 f"store={store / 'store'}", f"cache_dir={store / 'cache'}",
                 *EXTRA.get(task, [])]  # fmt: skip
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = to_plain(compose("evaluate", overrides=overrides))
    for ds in cfg["task"]["datasets"].values():
        ds["root"] = str(world / Path(ds["root"]).name)
    return cfg


def _metric(paths: list[Path], backbone: str, condition: str, metric: str) -> float:
    for p in paths:
        r = json.loads(p.read_text())
        if r["backbone"] == backbone and r["condition"] == condition:
            return float(r["metrics"][metric]["value"])
    raise SystemExit(f"no {backbone}/{condition} record among {paths}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="world seeds")
    ap.add_argument("--root", type=Path, default=Path("runs/trivial_margins"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--task", action="append", choices=sorted(TASKS), help="default: every task")
    args = ap.parse_args()
    tasks = args.task or list(TASKS)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    rows = []
    for seed in args.seeds:
        world = args.root / f"world-small-s{seed}"
        ensure_world(world, "small", seed)
        for task in tasks:
            metric, sign, condition = TASKS[task]
            written = run_probe(_config(world, args.root / f"s{seed}", task), progress=False)
            probe, trivial = (_metric(written, b, condition, metric) for b in ("pixel_stats", "trivial"))
            margin = sign * (probe - trivial) / trivial
            rows.append({"world_seed": seed, "task": task, "metric": metric, "probe": probe,
                         "trivial": trivial, "relative_margin": margin})  # fmt: skip
            print(f"seed {seed} {task:5s} {metric:8s} probe {probe:.4f} trivial {trivial:.4f} "
                  f"margin {100 * margin:+.1f} %", flush=True)  # fmt: skip
    worst = {t: f"{100 * min(r['relative_margin'] for r in rows if r['task'] == t):+.1f} %" for t in tasks}
    print(f"smallest relative margin over world seeds {args.seeds}: {worst}")
    if args.out:  # atomic: parents made, never half-written
        atomic_write_text(args.out, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
