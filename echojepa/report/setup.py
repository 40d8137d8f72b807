"""What every backbone was given: one text table beside the six result tables.

For each backbone and task it reads the standard-protocol records' ``chosen`` entry (written by the
probe runner, ``echojepa.probe.training.probe_input`` and ``ProbeBank.describe``): the clip the backbone
saw (frames, size, step; clips per item), the tokens it produced per clip and their width, the probe
those tokens were mapped into (kind, width, depth, trainable parameters) and the optimizer steps the
probe took. A reviewer checks here that every row of a comparison had the same probe and budget.
Records written before the input was recorded show "—" in those columns.
"""

from __future__ import annotations

from echojepa.report.records import TASKS, ResultSet, order_backbones
from echojepa.report.render import MISSING
from echojepa.report.tables import FMT_TEXT, Cell, Column, Row, Table

__all__ = ["setup_table"]

_HEADERS = ("Task", "Input", "Clips / item", "Tokens / clip", "Probe", "Trainable params", "Probe steps")


def _input_text(given: dict) -> str:
    step = given.get("frame_step")
    bf16 = given.get("feature_precision") == "bf16-mixed"  # the backbone's forward (echojepa/probe/taskdata)
    return (
        f"{given['frames']} x {given['img_size']}px"
        + (f", step {step}" if step else "")
        + (", bf16 forward" if bf16 else "")
    )


def _pooling(probe: dict) -> str:
    space = probe.get("space_grid")  # tokens averaged over space to this grid first (probe/space_pool.py)
    text = f", space pooled to {space[0]} x {space[1]}" if space else ""
    text += ", motion tokens" if probe.get("motion") else ""  # probe/motion.py
    views = probe.get("aug_views")  # the train split's augmented views, one per epoch (probe/training.py)
    text += f", {views} augmented train views" if views else ""
    return text + (", bf16 training" if probe.get("precision") == "bf16-mixed" else "")  # probe/fit.py


def _texts(record: dict) -> list[str]:
    chosen = record["chosen"]
    probe = chosen.get("probe") or {}
    given = probe.get("input")
    depth = probe.get("depth")
    kind = probe.get("kind", MISSING) + (f", depth {depth}" if depth is not None else "")
    params = probe.get("trainable_params")
    return [
        record["task"],
        _input_text(given) if given else MISSING,
        str(given["clips"]) if given else MISSING,
        f"{given['tokens_per_clip']} x {given['backbone_dim']}" if given else MISSING,
        f"{kind}, width {probe['width']}{_pooling(probe)}" if "width" in probe else kind + _pooling(probe),
        f"{params:,}" if isinstance(params, int) else MISSING,
        f"{chosen.get('steps', MISSING)} ({chosen.get('epochs', MISSING)} epochs)",
    ]


def setup_table(rs: ResultSet) -> Table:
    """One row per (backbone, task) of the standard protocol, in report row order; trivial rows (no
    probe) are left out. The lowest seed's first condition stands for the others, which share it."""
    picked: dict[tuple[str, str], dict] = {}
    for r in sorted(rs.records, key=lambda r: (r["seed"], r["condition"])):
        if r["protocol"] == "standard" and r.get("chosen") and r["backbone_kind"] != "trivial":
            picked.setdefault((r["backbone"], r["task"]), r)
    backbones = order_backbones({(r["backbone"], r["backbone_kind"]) for r in picked.values()})
    rank = {t: i for i, t in enumerate(TASKS)}
    rows = []
    for name, kind in backbones:
        tasks = sorted((t for b, t in picked if b == name), key=lambda t: (rank.get(t, len(rank)), t))
        for task in tasks:
            rows.append(Row(name, kind, [Cell(text=t) for t in _texts(picked[(name, task)])]))
    columns = [Column(h, FMT_TEXT) for h in _HEADERS]
    notes = [
        "Input: frames per clip x frame size (and source-frame step) the backbone saw; tokens are mapped "
        'by a fixed train-fit projection to the probe width before the probe; "space pooled" probes first '
        "average each time step's tokens over space to that grid."
    ]
    return Table("setup", "What Each Backbone Was Given", columns, rows, notes)
