"""`echojepa-predict`: run a trained model bundle on echo files (AVI/MP4/DICOM).

Thin: parse, call echojepa.predict, print. One rich table per file, or one JSON list with --json.
Exit codes: 0 at least one file was scored and the others cleanly reported unscorable (still, Doppler,
undecodable, not a file); 1 no file could be scored, or a file failed unexpectedly (reported, the other
files still scored); 2 usage error, or a bundle that is missing or refused (one line on stderr naming
the file and the reason). Output holds the paths as given, acquisition facts and predictions only: never
a patient identifier.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from echojepa.predict import InferenceSession, PredictOptions


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echojepa-predict", description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="AVI/MP4/DICOM files to score")
    p.add_argument(
        "--checkpoint", type=Path, required=True, metavar="BUNDLE", help="model bundle (make_bundle)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON list instead of tables")
    p.add_argument("--attention", type=Path, default=None, metavar="DIR", help="write attention PNG/GIF here")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument(
        "--all-clips", action="store_true", help="average over every window, not the centre clip(s)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="clips per backbone call")
    return p


def _fail(message: str, code: int = 2) -> int:
    one_line = " ".join(message.split())  # e.g. a key-mismatch listing: one line, still complete
    print(f"echojepa-predict: {one_line}", file=sys.stderr)
    return code


def _table(r: Mapping[str, Any]) -> Table:
    t = Table(show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    if not r["scorable"]:
        t.add_row("scorable", f"no: {escape(r['reason'])}")
        return t
    region = "whole frame" if r["region"] is None else "x0,y0,x1,y1 = " + ",".join(map(str, r["region"]))
    t.add_row(
        "video", f"{r['format']} {r['kind']}, {r['frames']} frames @ {r['fps']:.3g} fps ({r['fps_source']})"
    )
    t.add_row("frame", f"{r['width']}x{r['height']} px, {region}")
    t.add_row("clips", ", ".join(f"{k}: {v}" for k, v in r["clips"].items()) + f" ({r['clip_mode']})")
    for name, value in r.items():
        if isinstance(value, Mapping) and "probabilities" in value:
            ranked = sorted(value["probabilities"].items(), key=lambda kv: -kv[1])[:3]
            t.add_row(name, f"{value['top']}  (" + ", ".join(f"{c} {p:.2f}" for c, p in ranked) + ")")
    for name, unit in r.get("units", {}).items():
        value = r.get(name)
        shown = f"{value:.1f} {unit or ''}".strip() if value is not None else f"- ({r.get(f'{name}_reason')})"
        t.add_row(name, escape(shown))
    att = r.get("attention")
    if att:
        t.add_row("attention", escape(f"{att['png']}, {att['gif']}" if att.get("png") else att["reason"]))
    return t


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: usage error (2) or --help (0)
        return int(exc.code or 0)
    if not args.checkpoint.exists():
        return _fail(f"model bundle not found: {args.checkpoint}")
    if not args.checkpoint.is_file():
        return _fail(f"{args.checkpoint}: model bundle path is not a file")
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        return _fail(f"--device {args.device!r}: {exc}")
    if device.type == "cuda" and not torch.cuda.is_available():
        return _fail(f"--device {args.device!r}: CUDA is not available on this machine")
    try:
        options = PredictOptions(clip_mode="all" if args.all_clips else "center")
        if args.batch_size is not None:
            options = replace(options, batch_size=args.batch_size)
        session = InferenceSession.from_bundle(args.checkpoint, device=device, options=options)
    except (ValueError, OSError, RuntimeError) as exc:  # refused bundle, bad option or unusable device
        return _fail(str(exc))
    results: list[dict[str, Any]] = []
    failed = False
    for f in args.files:
        try:
            results.append(session.predict_file(f, args.attention))
        except Exception as exc:  # a bug or resource failure on one file must not lose the others
            failed = True
            results.append(
                {"file": str(f), "scorable": False, "reason": f"error: {type(exc).__name__}: {exc}"}
            )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        console = Console()
        for r in results:
            # the file on a line of its own, never wrapped: a path must stay whole to be copied
            console.print(escape(r["file"]), soft_wrap=True, style="bold")
            console.print(_table(r))
    if not any(r["scorable"] for r in results):
        return _fail(f"none of the {len(results)} input(s) could be scored (reasons above)", code=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
