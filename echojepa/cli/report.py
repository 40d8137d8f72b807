"""`echojepa-report`: the paper-style tables and figures from a results store.

Thin: parse, call `echojepa.report.build` (and `echojepa.report.sweep` for `--sweep`: a Hydra multirun
probe sweep as a table from the MLflow store), print. Exit codes: 0 written, 1 written but some table
has missing cells and `--require-complete` was given, 2 usage or input error (one line on stderr
naming the file and the reason).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from echojepa.report.build import DEFAULT_TITLE, build_report, print_tables
from echojepa.report.records import RecordError
from echojepa.report.sweep import EXPERIMENT, LATEST, SweepError, print_sweep


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echojepa-report", description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, help="results store (holds records/)")
    p.add_argument("--out", type=Path, help="folder for report.md, report.html, figures/")
    p.add_argument("--title", default=DEFAULT_TITLE)
    p.add_argument("--print", action="store_true", dest="print_tables", help="also print the tables")
    p.add_argument(
        "--skip-missing-predictions",
        action="store_true",
        help="leave out (and list) figures whose predictions CSV is missing instead of failing",
    )
    p.add_argument("--require-complete", action="store_true", help="exit 1 when any table has missing cells")
    p.add_argument(
        "--sweep",
        nargs="?",
        const=LATEST,
        help="print an `echojepa-probe -m` sweep (its folder; default: the latest) as a table",
    )
    p.add_argument(
        "--tracking-uri", help="MLflow store the sweep logged to, e.g. sqlite:///$PWD/runs/mlflow.db"
    )
    p.add_argument("--experiment", default=EXPERIMENT, help=f"MLflow experiment of the sweep ({EXPERIMENT})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.store is None) != (args.out is None) or (args.store is None and args.sweep is None):
        parser.error("--store and --out are required together (or give --sweep alone)")
    if args.sweep is not None and args.tracking_uri is None:
        parser.error("--sweep needs --tracking-uri")
    console = Console()
    if args.sweep is not None:
        try:
            print_sweep(args.tracking_uri, args.sweep, args.experiment, console)
        except SweepError as err:
            print(f"echojepa-report: {err}", file=sys.stderr)
            return 2
        if args.store is None:
            return 0
    try:
        result = build_report(
            args.store,
            args.out,
            title=args.title,
            missing_predictions="skip" if args.skip_missing_predictions else "error",
        )
        if args.print_tables:
            print_tables(args.store, console)
    except (RecordError, FileNotFoundError, ValueError) as err:
        print(f"echojepa-report: {err}", file=sys.stderr)
        return 2
    print(f"wrote {result['markdown']}")
    print(f"wrote {result['html']} ({len(result['figures'])} figure(s) embedded)")
    for key, info in result["tables"].items():
        state = "complete" if info["complete"] else f"{info['missing']} missing"
        print(f"  {key}: {info['rows']} row(s), {state}")
    for reason in result["skipped_figures"]:
        print(f"  skipped figure: {reason}")
    if args.require_complete and not result["complete"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
