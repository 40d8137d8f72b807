"""`echojepa-probe`: Hydra front end of echojepa.probe.runner.run_probe (thin: compose, call, print).

Exit codes: 0 records written; 2 bad input (a refused file or option: one line on stderr naming it and
the reason, no traceback).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR
from echojepa.probe.errors import ProbeInputError


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def app(cfg: DictConfig) -> None:
    from echojepa.probe.runner import run_probe

    try:
        written = run_probe(to_plain(cfg))
    except ProbeInputError as exc:  # SystemExit passes through Hydra's error reporting untouched
        print(f"echojepa-probe: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    for path in written:
        print(path)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
