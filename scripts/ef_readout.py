#!/usr/bin/env python3
"""Where does EF live in frozen features? Closed-form ridge readouts on a synthetic world's EF subsets.

    .venv/bin/python scripts/ef_readout.py --world science/data/synth-science-s0 \\
        --encoder echojepa=science/runs/pretrain-jepa/reference.pt:target_encoder \\
        --out results/science/ef_readout.json

For the pixel-statistics reference, a random-init cpu_tiny encoder at three token grids (64 px / patch
16: 4 x 4; 112 px / 16: 7 x 7; 64 px / 8: 8 x 8) and any `--encoder` checkpoint (cpu_tiny, 64 px), it
fits the online probe's ridge (echojepa.pretrain.closed_form: strength by leave-one-out on train) on
TRAIN clips and scores VAL clips (never test), for each part of the online probe's pooling alone and
together: the per-time-step means with the clip mean ("time means"), each position's std over time
("motion map"), and both ("time_pooled", what the online probe reads). The train-mean MAE on the same
val clips is the floor. Written as JSON; the figures are quoted in conf/online_probe/synthetic.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from echojepa.data.clips import ClipSpec  # noqa: E402
from echojepa.data.datamodules import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from echojepa.data.labelled_subset import label_tensor, load_clips, select  # noqa: E402
from echojepa.io.atomic import atomic_write_text  # noqa: E402
from echojepa.models.checkpoint import import_reference_encoder  # noqa: E402
from echojepa.models.vit import VisionTransformer  # noqa: E402
from echojepa.paths import CONF_DIR  # noqa: E402
from echojepa.pretrain.closed_form import fit_and_score, pixel_tokens, time_pooled, trivial_score  # noqa: E402

ALPHAS = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]  # as conf/online_probe/synthetic.yaml


def parts(tokens: torch.Tensor, grid: tuple[int, int, int]) -> dict[str, torch.Tensor]:
    """The online probe's pooling and its two parts: [B, N, D] -> {part: [B, F]}."""
    t, _, _ = grid
    d = tokens.shape[-1]
    full = time_pooled(tokens, grid)
    return {"time means": full[:, : (t + 1) * d], "motion map": full[:, (t + 1) * d :], "time_pooled": full}


def normalise(video: torch.Tensor) -> torch.Tensor:
    x = video.float().div(255.0)  # [B, C, T, H, W] in 0-1
    mean = torch.tensor(IMAGENET_MEAN).view(1, -1, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, -1, 1, 1, 1)
    return (x - mean) / std


def encode(vit: VisionTransformer, video: torch.Tensor, batch: int = 32) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([vit(normalise(video[i : i + batch])) for i in range(0, len(video), batch)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True, help="a synthetic world folder (holds echonet_dynamic/)")
    ap.add_argument("--train", type=int, default=512)
    ap.add_argument("--val", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0, help="subset draw and random-init weights")
    ap.add_argument(
        "--encoder",
        action="append",
        default=[],
        help="NAME=PATH[:ENTRY]: a cpu_tiny checkpoint (reference layout; ENTRY default target_encoder)",
    )
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    preset = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "cpu_tiny.yaml"), resolve=True)
    enc_cfg = dict(preset["encoder"])
    clip = OmegaConf.load(CONF_DIR / "data" / "synthetic.yaml").clip
    spec = ClipSpec(frames=int(preset["num_frames"]), frame_step=int(clip.frame_step), target_fps=None)
    world = Path(args.world)
    records = select(
        "echonet_dynamic",
        world / "echonet_dynamic",
        {},
        "ef",
        {"train": args.train, "val": args.val},
        args.seed,
    )
    y = {split: label_tensor(recs, "ef", None) for split, recs in records.items()}
    rows: list[dict] = []

    def score(source: str, geometry: str, part: str, feats: dict[str, torch.Tensor]) -> None:
        mae = fit_and_score("regression", feats["train"], y["train"], feats["val"], y["val"], ALPHAS).value
        rows.append({"source": source, "geometry": geometry, "pooling": part, "val_mae": round(mae, 3),
                     "features": int(feats["train"].shape[1])})  # fmt: skip
        print(
            f"{source:14s} {geometry:18s} {part:12s} {mae:6.2f}  ({feats['train'].shape[1]} features)",
            flush=True,
        )

    floor = trivial_score("regression", y["train"], y["val"])
    print(f"train mean on val: {floor:.2f}", flush=True)
    for size, patch in ((64, 16), (112, 16), (64, 8)):
        geometry = f"{size} px, patch {patch}"
        video = {split: load_clips(recs, spec, size, 2) for split, recs in records.items()}  # uint8
        if patch == 16:
            pix = {s: pixel_tokens(v, int(enc_cfg["tubelet_size"]), 8) for s, v in video.items()}
            by_part = {s: parts(tok, grid) for s, (tok, grid) in pix.items()}
            for part in ("time means", "motion map", "time_pooled"):
                score(
                    "pixel_stats", f"{size} px, 8 x 8 cells", part, {s: p[part] for s, p in by_part.items()}
                )
        torch.manual_seed(args.seed)
        vit = VisionTransformer(
            img_size=size, num_frames=spec.frames, **{**enc_cfg, "patch_size": patch}
        ).eval()
        grid = vit.input_grid(normalise(video["val"][:1]))
        by_part = {s: parts(encode(vit, v), grid) for s, v in video.items()}
        for part in ("time means", "motion map", "time_pooled"):
            score("random_init", geometry, part, {s: p[part] for s, p in by_part.items()})
        if size == int(preset["img_size"]) and patch == int(enc_cfg["patch_size"]):
            for spec_str in args.encoder:
                name, _, where = spec_str.partition("=")
                path, _, entry = where.partition(":")
                pretrained = VisionTransformer(img_size=size, num_frames=spec.frames, **enc_cfg)
                import_reference_encoder(path, pretrained, which=entry or "target_encoder")
                by_part = {s: parts(encode(pretrained.eval(), v), grid) for s, v in video.items()}
                for part in ("time means", "motion map", "time_pooled"):
                    score(name, geometry, part, {s: p[part] for s, p in by_part.items()})
    out = {
        "command": " ".join(["scripts/ef_readout.py", *(argv if argv is not None else sys.argv[1:])]),
        "world": str(world),
        "subsets": {"train": args.train, "val": args.val, "seed": args.seed},
        "train_mean_val_mae": round(floor, 3),
        "rows": rows,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out} in {out['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
