"""A study's config (conf/study/*.yaml): the pretraining runs, the backbone rows, the evaluations, the
candidate recipes and the repeat seeds, checked by the dataclasses below (an unknown key is refused)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra import compose, initialize_config_dir

from echojepa.config import to_plain
from echojepa.confkeys import parse, reads
from echojepa.paths import CONF_DIR
from echojepa.synth.config import WorldRef


@dataclass(frozen=True)
class PretrainSpec:
    """One pretraining run of a study: a conf/experiment recipe and the study's overrides of it."""

    experiment: str
    overrides: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BackboneSpec:
    """One row of the study's tables: a conf/backbone preset, its overrides, and which pretraining run
    gives its weights (checkpoint_from) or only its architecture (model_from)."""

    preset: str
    overrides: list[str] = field(default_factory=list)
    checkpoint_from: str | None = None
    model_from: str | None = None


@dataclass(frozen=True)
class RecipeSpec:
    """A candidate pretraining recipe, tried before the study (`Study.trials`): the study's pretraining
    run it varies and the overrides that make it different (a length, a predictor, an EMA schedule)."""

    pretrain: str
    overrides: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RepeatSpec:
    """Further seeds of the comparison (Study.evaluate_repeats): at each, every pretraining run of the study
    is repeated with that seed, and `evaluations` are repeated for every backbone with it: the pretrained
    encoders of that seed's runs, a random-init encoder drawn with it, probes seeded with it. The records
    carry the seed under the same backbone names, so each table cell is the mean ± sd over seeds and a
    claim pairs seed with seed, resampling the seeds too (echojepa.report)."""

    seeds: list[int]
    evaluations: list[list[str]]


@reads("study")
@dataclass(frozen=True)
class StudyConfig:
    """conf/study/*.yaml (read by Study)."""

    name: str
    world: WorldRef
    pretrain: dict[str, PretrainSpec]
    backbones: dict[str, BackboneSpec]
    probe: str
    evaluations: list[list[str]]
    predict_bundle_backbone: str
    probe_overrides: list[str] = field(default_factory=list)
    evaluation_overrides: list[str] = field(default_factory=list)
    seed: int = 0
    # robustness and pediatric zero-shot evaluate the task's standard head instead of training it again
    # (Study.evaluation_runs); False trains one per protocol, as a lone `echojepa-probe` run does
    reuse_standard_probe: bool = False
    # candidate recipes compared on the online probes (validation) before the study: scripts/demo.py --trials
    recipes: dict[str, RecipeSpec] = field(default_factory=dict)
    # pretraining seeds beyond `seed` and the evaluations repeated at each (RepeatSpec); null: none
    repeats: RepeatSpec | None = None


def load_study(name: str) -> dict[str, Any]:
    """conf/study/<name>.yaml composed, its keys checked by StudyConfig (an unknown key is refused)."""
    with initialize_config_dir(config_dir=str(CONF_DIR / "study"), version_base="1.3"):
        cfg = to_plain(compose(config_name=name))
    # a study built on another drops an inherited backbone by setting it to null (Hydra merges dicts)
    cfg["backbones"] = {k: v for k, v in (cfg.get("backbones") or {}).items() if v is not None}
    parse(StudyConfig, cfg, f"study {name}")
    check_repeats(cfg, name)
    return cfg


def check_repeats(cfg: dict[str, Any], name: str) -> None:
    """Refuse repeats a study cannot run (ValueError naming the study): a repeat seed equal to the study's
    own or listed twice, an evaluation the study does not run, or one whose records already carry
    several seeds of their own (sample efficiency's probe seeds would collide with the repeat's)."""
    repeats = cfg.get("repeats")
    if not repeats:
        return
    seeds = list(repeats["seeds"])
    if cfg.get("seed", 0) in seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"study {name}: repeats.seeds {seeds} must be distinct and differ from seed")
    runs = [list(e) for e in cfg["evaluations"]]
    for task, protocol in repeats["evaluations"]:
        if [task, protocol] not in runs:
            raise ValueError(f"study {name}: repeats evaluation {task}/{protocol} is not in evaluations")
        if protocol == "sample_efficiency":
            raise ValueError(
                f"study {name}: sample_efficiency has probe seeds of its own (protocol.seeds); "
                "it cannot be a repeated evaluation"
            )
