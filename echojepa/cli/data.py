"""`echojepa-data`: make the synthetic echo world, validate a dataset download, inspect one file.

Thin: parse, call the library, print. Exit codes: 0 fine, 1 the dataset has problems, 2 usage or
I/O error (one line on stderr naming the file and the reason). Nothing identifying a patient is ever
printed: `inspect` shows only `VideoInfo.to_json()` fields.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from echojepa.data.datasets import READERS, DatasetError
from echojepa.io.atomic import atomic_write
from echojepa.synth.config import preset_names


def _option(text: str) -> tuple[str, object]:
    """`KEY=VALUE` with a YAML value (`test_fold=3`, `views=[A4C]`, `split_fractions=[0.7,0.15,0.15]`)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echojepa-data", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write the synthetic echo world in real dataset layouts")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--preset", choices=preset_names(), default="demo")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--preview", type=Path, default=None, help="PNG contact sheet of generated clips")

    c = sub.add_parser("check", help="validate a dataset: files, labels, splits, decoding")
    c.add_argument("--format", required=True, choices=sorted(READERS))
    c.add_argument("--root", type=Path, required=True)
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--no-decode", action="store_true", help="skip probing and decoding the files")
    c.add_argument("--workers", type=int, default=1, help="threads decoding files")
    c.add_argument(
        "-o",
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="reader option, e.g. -o test_fold=3 -o views=[A4C]",
    )

    i = sub.add_parser("inspect", help="what one video/DICOM holds and what the model will see")
    i.add_argument("file", type=Path)
    i.add_argument("--json", action="store_true")
    i.add_argument("--preview", type=Path, default=None, help="PNG contact sheet of the model's view")
    i.add_argument("--preview-frames", type=int, default=8)
    i.add_argument("--preview-size", type=int, default=112)
    return p


def _fail(message: str) -> int:
    print(f"echojepa-data: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _os_error(e: OSError, path: Path) -> str:
    """One line for a failed write: the file it concerns and the system's reason."""
    return f"{e.filename or path}: {e.strerror or e}"


def _unwritable(path: Path, *, folder: bool) -> str | None:
    """Why ``path`` (a folder to fill, or a file to write) cannot be written; None when it can.

    Checked before any work starts, and creates nothing: a refused run leaves no folder behind.
    """
    if path.exists() and folder != path.is_dir():
        return f"{path}: exists and is not a folder" if folder else f"{path}: is a folder, not a file"
    target = path if folder and path.exists() else path.parent
    while not target.exists():  # the nearest existing ancestor is where the folders get created
        target = target.parent
    if not target.is_dir():
        return f"{path}: cannot be created, {target} is not a folder"
    if not os.access(target, os.W_OK | os.X_OK):
        return f"{path}: no permission to write in {target}"
    return None


def _synth(args: argparse.Namespace, console: Console) -> int:
    try:
        from echojepa.synth import generate
    except ImportError as e:
        return _fail(f"EchoSynth is not available: {e}")
    problem = _unwritable(args.out, folder=True)
    if problem is None and args.preview is not None:
        problem = _unwritable(args.preview, folder=False)
    if problem:
        return _fail(problem)
    try:
        summary = generate(args.out, args.preset, seed=args.seed, preview=args.preview, progress=True)
    except OSError as e:  # disk full, permissions changed mid-run: the world has no manifest
        return _fail(_os_error(e, args.out))
    console.print(f"wrote {escape(str(args.out))} (preset {args.preset}, seed {args.seed})")
    console.print_json(json.dumps(summary, default=str))
    return 0


def _check(args: argparse.Namespace, console: Console) -> int:
    from echojepa.data.check import check_dataset

    # The report lists every skipped row itself: the reader's per-row log lines would repeat them.
    reader_log = logging.getLogger("echojepa.data.datasets")
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)
    try:
        report = check_dataset(
            args.format, args.root, decode=not args.no_decode, workers=args.workers, **dict(args.option)
        )
    except (FileNotFoundError, DatasetError, ValueError, TypeError) as e:
        return _fail(str(e))
    finally:
        reader_log.setLevel(level)
    if args.json:
        print(report.dumps())
        return 0 if report.ok else 1

    # the root on a line of its own, never wrapped: a path must stay whole to be copied
    console.print(f"{args.format}: {escape(str(args.root))}", soft_wrap=True, style="bold")
    counts = Table()
    for name in (*report.counts, "excluded", "problems"):
        counts.add_column(name, justify="right")
    counts.add_row(
        *(str(v) for v in report.counts.values()), str(len(report.excluded)), str(len(report.problems))
    )
    console.print(counts)
    if report.label_stats:
        labels = Table(title="labels")
        for name in ("label", "n", "mean", "std", "min", "max"):
            labels.add_column(name, justify="right")
        for name, s in report.label_stats.items():
            labels.add_row(name, str(s.n), f"{s.mean:.2f}", f"{s.std:.2f}", f"{s.min:.2f}", f"{s.max:.2f}")
        console.print(labels)
    for name, classes in report.class_counts.items():
        console.print(f"{escape(name)}: " + ", ".join(f"{escape(k)}={v}" for k, v in classes.items()))
    for file, reason in report.problems:
        console.print(f"[red]BAD[/red] {escape(file)}: {escape(reason)}", soft_wrap=True)
    console.print("[green]ok[/green]" if report.ok else f"[red]{len(report.problems)} problem(s)[/red]")
    return 0 if report.ok else 1


def write_preview(path: Path, out: Path, *, frames: int = 8, size: int = 112) -> Path:
    """A PNG contact sheet of what the model sees: evenly spaced frames, cropped, masked, resized."""
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from echojepa.io import read_video, video_info

    info = video_info(path)
    indices = np.unique(np.linspace(0, max(info.frames - 1, 0), frames).round().astype(int))
    video = read_video(path, indices, allow_non_cine=True, estimate_mask=True)
    clip = video.frames  # [T, H, W, 3] uint8
    if video.mask is not None:
        clip = clip * video.mask[None, :, :, None].astype(clip.dtype)
    fig, axes = plt.subplots(1, len(clip), figsize=(1.5 * len(clip), 1.8), squeeze=False)
    for ax, frame, index in zip(axes[0], clip, video.frame_indices):
        ax.imshow(np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR)))
        ax.set_title(f"frame {int(index)}", fontsize=7)
        ax.axis("off")
    fig.suptitle(f"{info.kind}, {info.fps:.1f} fps, {size} px", fontsize=8)
    try:
        atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return out


def _inspect(args: argparse.Namespace, console: Console) -> int:
    from echojepa.io import video_info
    from echojepa.io.types import VideoReadError

    if not args.file.exists():
        return _fail(f"{args.file}: file not found")
    if not args.file.is_file():
        return _fail(f"{args.file}: not a file")
    if args.preview is not None and (problem := _unwritable(args.preview, folder=False)):
        return _fail(problem)
    try:
        info = video_info(args.file)
        if args.preview is not None:
            write_preview(args.file, args.preview, frames=args.preview_frames, size=args.preview_size)
    except (VideoReadError, ValueError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(_os_error(e, args.preview or args.file))
    if args.json:
        print(json.dumps(info.to_json()))
        return 0
    console.print(escape(str(args.file)), soft_wrap=True, style="bold")  # whole, never wrapped
    table = Table(show_header=False)
    for key, value in info.to_json().items():
        table.add_row(key, escape(str(value)))
    table.add_row("fps_source", info.fps_source)
    console.print(table)
    if args.preview is not None:
        console.print(f"preview: {escape(str(args.preview))}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(highlight=False)
    return {"synth": _synth, "check": _check, "inspect": _inspect}[args.command](args, console)


if __name__ == "__main__":
    raise SystemExit(main())
