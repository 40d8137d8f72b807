"""`echojepa-train`: Hydra front end of echojepa.pretrain.run.pretrain (thin: compose, call, print).

Exit codes: 0 trained; 2 bad input (a refused option, checkpoint or dataset: one line on stderr naming
it and the reason, no traceback, and no run folder left behind).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR


def discard_refused_run(run_dir: Path, runs_root: Path) -> None:
    """Remove the folder Hydra made under `runs_root` for a run refused before it wrote anything, and
    the parents that only held it. A folder holding more than Hydra's own config and log files, or one
    outside `runs_root` (a `hydra.run.dir` the user chose), is left alone."""
    run_dir, root = run_dir.resolve(), runs_root.resolve()
    if not run_dir.is_dir() or root not in run_dir.parents:
        return
    if any(p.name != ".hydra" and p.suffix != ".log" for p in run_dir.iterdir()):
        return
    shutil.rmtree(run_dir)
    parent = run_dir.parent
    while parent != root and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def app(cfg: DictConfig) -> float | None:
    from echojepa.pretrain.inputs import PretrainInputError
    from echojepa.pretrain.run import pretrain

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        summary = pretrain(to_plain(cfg), run_dir)
    except PretrainInputError as exc:  # SystemExit passes through Hydra's error reporting untouched
        discard_refused_run(run_dir, Path(cfg.paths.runs))
        print(f"echojepa-train: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(summary, indent=2))
    return summary.get("final_loss")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
