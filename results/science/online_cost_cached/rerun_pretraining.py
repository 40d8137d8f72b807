"""Online-probe cost with the subsets read through the pretraining clip cache (data.cache): the science
study's two pretraining runs again with the study's own configs, after `make science` has written its
world and cache. EchoJEPA runs first (its online probe stores the subsets' entries), then EchoMAE (reads
them). Run from the repository root: `.venv/bin/python results/science/online_cost_cached/rerun_pretraining.py jepa mae`.
The figure is `cost_frac` at the last step of science/online_cost/<objective>/online_probe.csv."""

import sys
import time
from pathlib import Path

from echojepa.pipeline import Study
from echojepa.pretrain.run import pretrain

study = Study("science", Path("science"))
runs = Path("science/online_cost_runs").resolve()
for objective in sys.argv[1:]:
    cfg = study.pretrain_cfg(objective, ["trainer.enable_progress_bar=false", f"paths.runs={runs}"])
    t0 = time.perf_counter()
    pretrain(cfg, Path("science/online_cost") / objective)
    print(objective, "wall", round(time.perf_counter() - t0, 1), flush=True)
