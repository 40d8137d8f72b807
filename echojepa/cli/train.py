"""`echojepa-train`: Hydra front end of echojepa.pretrain.run.pretrain (thin: compose, call, print)."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def app(cfg: DictConfig) -> float | None:
    from echojepa.pretrain.run import pretrain

    summary = pretrain(to_plain(cfg), Path(HydraConfig.get().runtime.output_dir))
    print(json.dumps(summary, indent=2))
    return summary.get("final_loss")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
