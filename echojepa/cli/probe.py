"""`echojepa-probe`: Hydra front end of echojepa.probe.runner.run_probe (thin: compose, call, print)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def app(cfg: DictConfig) -> None:
    from echojepa.probe.runner import run_probe

    for path in run_probe(to_plain(cfg)):
        print(path)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
