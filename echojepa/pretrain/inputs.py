"""User input to a pretraining run, checked before any data is indexed or model built.

A refused input raises PretrainInputError, whose message names the option or file and the reason in
one line; `echojepa-train` prints it and exits 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from echojepa.data.index import SPLITS
from echojepa.io.weights import read_weights_file
from echojepa.pretrain.callbacks import checkpoint_problem


class PretrainInputError(ValueError):
    """Bad user input to a pretraining run (a refused checkpoint, option or dataset)."""


# Integer options and the least value their consumer (Lightning, the DataLoader, numpy's seeding)
# accepts (and whether it may be null); anything else would fail later, deep inside, with a traceback.
INTEGER_OPTIONS: tuple[tuple[str, int, bool], ...] = (
    ("seed", 0, False),
    ("trainer.max_steps", -1, False),  # -1: no step limit
    ("trainer.max_epochs", -1, True),  # -1 / null: no epoch limit
    ("trainer.accumulate_grad_batches", 1, False),
    ("trainer.log_every_n_steps", 1, False),
    ("trainer.num_nodes", 1, False),
    ("data.batch_size", 1, False),
    ("data.num_workers", 0, False),
    ("checkpoint.every_n_train_steps", 0, False),  # 0: no step-based checkpoints
)


def _lookup(cfg: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_options(cfg: dict[str, Any]) -> None:
    for name, least, nullable in INTEGER_OPTIONS:
        present, value = _lookup(cfg, name)
        if not present or (value is None and nullable):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise PretrainInputError(f"{name}: expected an integer >= {least}, got {value!r}")
    present, splits = _lookup(cfg, "data.splits")
    known = isinstance(splits, (list, tuple)) and splits and all(s in SPLITS for s in splits)
    if present and not known:
        raise PretrainInputError(f"data.splits: expected a list of {', '.join(SPLITS)}, got {splits!r}")


def _model_parallel(strategy: Any) -> bool:
    target = strategy.get("_target_", "") if isinstance(strategy, dict) else ""
    return target.endswith("ModelParallelStrategy")


def check_checkpoints(cfg: dict[str, Any]) -> None:
    """`ckpt_path` must be a complete Lightning checkpoint (a file, or a sharded folder under FSDP);
    `init_from` must be a file (its layout is checked strictly when it is imported)."""
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None:
        if not str(ckpt).strip():
            raise PretrainInputError("ckpt_path: empty; give a checkpoint to resume from, or leave it null")
        path = Path(ckpt)
        problem = checkpoint_problem(path)
        if problem:
            raise PretrainInputError(f"{path}: {problem}")
        if path.is_dir() and not _model_parallel(cfg.get("trainer", {}).get("strategy")):
            raise PretrainInputError(
                f"{path}: a sharded (FSDP) checkpoint folder; resume it with trainer=fsdp or trainer=fsdp_cpu"
            )
    init = cfg.get("init_from")
    if init is not None:
        if not str(init).strip():
            raise PretrainInputError(
                "init_from: empty; give released weights to start from, or leave it null"
            )
        # memory-mapped: only the pickled structure is read here; the import checks the layout strictly
        read_weights_file(init, "init_from", error=PretrainInputError, mmap=True)


def check_run_inputs(cfg: dict[str, Any]) -> None:
    """Every check that needs neither data nor a model; raises PretrainInputError."""
    check_options(cfg)
    check_checkpoints(cfg)
