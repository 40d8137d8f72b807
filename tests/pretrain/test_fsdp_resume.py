"""`echojepa-train trainer=fsdp_cpu` end to end on 2 CPU ranks: train, save a sharded checkpoint,
resume from it, and land on the same weights and EMA target as an unsharded (DDP) run."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from echojepa.models.checkpoint import load_reference_checkpoint
from echojepa.pretrain.callbacks import checkpoint_problem


def _train(world: Path, out: Path, *overrides: str) -> None:
    env = {**os.environ, "ECHOJEPA_RUNS": str(out.parent / "runs"), "PYTHONUNBUFFERED": "1"}
    args = [
        "experiment=demo_jepa",
        f"data.root={world / 'echonet_dynamic'}",
        "data.format=echonet_dynamic",
        "~data.reader.split_fractions",
        "data.synth=null",
        "data.num_workers=0",
        "data.batch_size=1",
        "data.clip.frames=8",
        "data.clip.frame_step=1",
        "model.img_size=32",
        "model.num_frames=8",
        "model.encoder.patch_size=8",
        # a fast-moving target, so a target that was not restored or not updated is visible
        "objective.ema.start=0.5",
        "objective.ema.end=0.5",
        "objective.ema.ramp_steps=0",
        "objective.schedule.warmup_steps=1",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "checkpoint.every_n_train_steps=2",
        "logger=csv",
        f"hydra.run.dir={out}",
        *overrides,
    ]
    r = subprocess.run(
        [sys.executable, "-m", "echojepa.cli.train", *args],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert r.returncode == 0, r.stderr[-3000:]


def _logged_steps(run_dir: Path) -> list[int]:
    (metrics,) = run_dir.glob("csv/*/metrics.csv")
    with open(metrics) as f:
        return sorted({int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss_step")})


@pytest.mark.slow  # three 2-process runs
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_fsdp_on_two_cpu_ranks_saves_resumes_and_matches_the_unsharded_ema_target(synth_world, tmp_path):
    first, resumed, unsharded = tmp_path / "first", tmp_path / "resumed", tmp_path / "ddp"
    _train(synth_world, first, "trainer=fsdp_cpu", "trainer.max_steps=2")
    ckpts = first / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step000002.ckpt"]  # no staging left
    assert all(p.is_dir() and checkpoint_problem(p) is None for p in ckpts.iterdir())

    _train(
        synth_world, resumed, "trainer=fsdp_cpu", "trainer.max_steps=4", f"ckpt_path={ckpts / 'last.ckpt'}"
    )
    assert _logged_steps(resumed) == [2, 3]  # continued from step 2, not restarted
    _train(synth_world, unsharded, "trainer=ddp_cpu", "trainer.max_steps=4")

    at_2 = load_reference_checkpoint(first / "reference.pt")
    got = load_reference_checkpoint(resumed / "reference.pt")
    want = load_reference_checkpoint(unsharded / "reference.pt")
    for part in ("encoder", "predictor", "target_encoder"):
        assert got[part].keys() == want[part].keys()
        for k in want[part]:
            torch.testing.assert_close(got[part][k], want[part][k], atol=1e-6, rtol=0, msg=f"{part}.{k}")
    moved = max(
        (want["target_encoder"][k] - at_2["target_encoder"][k]).abs().max() for k in want["target_encoder"]
    )
    assert moved > 1e-4  # steps 3-4 changed the target far beyond the tolerance above
