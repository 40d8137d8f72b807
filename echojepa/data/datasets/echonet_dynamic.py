"""The EchoNet-Dynamic reader: `FileList.csv`, optional `VolumeTracings.csv`, `Videos/<FileName>.avi`."""

from __future__ import annotations

from pathlib import Path

from echojepa.data.datasets.errors import Issues
from echojepa.data.datasets.splits import normalise_split
from echojepa.data.datasets.tables import (
    parse_labels,
    parse_number,
    read_table,
    require_root,
    traced_frames,
    with_avi,
)
from echojepa.data.index import DatasetIndex, Record


def read_echonet_dynamic(root: Path, *, on_error: str = "raise") -> DatasetIndex:
    """EchoNet-Dynamic: `FileList.csv`, optional `VolumeTracings.csv`, `Videos/<FileName>.avi`.

    One record per video (A4C); patient = study = file stem; labels ef/esv/edv; the released
    TRAIN/VAL/TEST split (any case). Traced frames go to `meta["traced_frames"]`.
    """
    root = require_root(root)
    issues = Issues(on_error)
    table = root / "FileList.csv"
    rows = read_table(table, ["FileName", "EF", "ESV", "EDV", "Split"])
    traced: dict[str, set[int]] = {}
    if (root / "VolumeTracings.csv").is_file():
        traced, _ = traced_frames(read_table(root / "VolumeTracings.csv", ["FileName", "Frame"]))

    records = []
    for row in rows:
        name = with_avi(row["FileName"])
        path = root / "Videos" / name
        try:
            split = normalise_split(row["Split"])
            labels = parse_labels(row, {"ef": "EF", "esv": "ESV", "edv": "EDV"}, required=True)
            meta = {
                k: parse_number(row.get(c, ""), c)
                for k, c in (
                    ("fps", "FPS"),
                    ("frames", "NumberOfFrames"),
                    ("height", "FrameHeight"),
                    ("width", "FrameWidth"),
                )
            }
        except ValueError as e:
            issues.bad(path, f"{table.name}: {e}")
            continue
        if meta["frames"] is not None and meta["frames"] <= 0:
            issues.bad(path, f"{table.name}: NumberOfFrames={meta['frames']:g} (zero frames)")
            continue
        if not path.is_file():
            issues.bad(path, "listed in FileList.csv but the file is missing")
            continue
        meta = {k: v for k, v in meta.items() if v is not None}
        if name in traced:
            meta["traced_frames"] = sorted(traced[name])
        stem = Path(name).stem
        records.append(
            Record(path=path, split=split, patient=stem, study=stem, view="A4C", labels=labels, meta=meta)
        )
    return DatasetIndex("echonet_dynamic", root, records, issues.skipped)
