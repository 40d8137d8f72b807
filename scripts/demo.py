#!/usr/bin/env python3
"""`make demo`: the seed's whole study in miniature on the synthetic echo world.

    .venv/bin/python scripts/demo.py [--study demo|tiny|science] [--root DIR] [--trials [--recipes A,B]]
                                     [--report-only] [--publish DIR]

--trials pretrains the study's candidate recipes (its `recipes`) and prints their online-probe
validation figures instead of running the study; --report-only draws a finished study's report again
from its records with the current report code (nothing trained or evaluated); --publish DIR copies a
finished study's results (report, curves, summaries, provenance; no caches) to DIR. Re-running resumes:
finished stages are skipped.
Outputs under DIR (default: ./demo):
data/ (the synthetic world), runs/ (pretraining runs, results store, probes, report, MLflow database).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from echojepa.pipeline import Study  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="demo", help="a config in conf/study/ (demo, tiny)")
    ap.add_argument("--root", type=Path, default=Path("demo"))
    ap.add_argument("--trials", action="store_true", help="pretrain the study's candidate recipes only")
    ap.add_argument("--recipes", help="with --trials: only these recipes (comma-separated names)")
    ap.add_argument("--report-only", action="store_true", help="redraw a finished study's report only")
    ap.add_argument("--publish", type=Path, help="after the run, copy its results (not caches) here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    study = Study(args.study, args.root)
    if args.recipes and not args.trials:
        ap.error("--recipes needs --trials")
    if args.report_only and args.trials:
        ap.error("--report-only and --trials exclude each other")
    only = [r.strip() for r in args.recipes.split(",") if r.strip()] if args.recipes else None
    try:
        study.check_recipes(only or [])
    except ValueError as e:  # a user's typo: one line, exit 2
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.report_only:
        try:
            summary = study.rebuild_report()
        except FileNotFoundError as e:  # no finished study at --root: one line, exit 2
            print(f"error: {e}", file=sys.stderr)
            return 2
    else:
        summary = study.trials(only) if args.trials else study.run()
    if args.publish:
        study.publish(args.publish, command=" ".join(["scripts/demo.py", *sys.argv[1:]]))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
