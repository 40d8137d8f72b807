"""The study pipeline behind `make demo`: synthetic world -> pretrain EchoJEPA and EchoMAE -> every
protocol for every backbone -> the seed's tables, a report and a model bundle for echojepa-predict.

Each stage leaves a marker (its own outputs, written atomically and last: the world's manifest.json,
pretraining's summary.json, one JSON per evaluation, the bundle); re-running skips finished stages, so
an interrupted demo resumes where it stopped and never skips a half-done one. Configs are composed
from conf/ (study/, train, evaluate) with the Hydra compose API; the stages themselves are plain
library calls.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from rich.console import Console

from echojepa.config import to_plain
from echojepa.io.atomic import atomic_write_text
from echojepa.paths import CONF_DIR
from echojepa.study_config import load_study

log = logging.getLogger(__name__)


def git_commit() -> str | None:
    """The short commit of this checkout (None for an installed copy or a machine without git)."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _compose(config_name: str, overrides: list[str]) -> dict[str, Any]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_plain(compose(config_name=config_name, overrides=overrides))


class Study:
    """Runs (or resumes) one study under `root` (data and runs live inside it)."""

    def __init__(self, name: str, root: Path, console: Console | None = None) -> None:
        self.cfg = load_study(name)
        self.root = Path(root).resolve()
        self.console = console or Console(width=150)  # tables need the room, also when piped to a log
        self.timings: dict[str, float] = {}
        self._composed: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}

    # ----- paths ------------------------------------------------------------------------------------
    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def world(self) -> Path:
        w = self.cfg["world"]
        return self.data_root / f"synth-{w['preset']}-s{w['seed']}"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def store(self) -> Path:
        return self.runs / "results"

    @property
    def mlflow_db(self) -> Path:
        return self.runs / "mlflow.db"  # conf/paths: ${paths.runs}/mlflow.db

    def _compose(self, config_name: str, overrides: list[str]) -> dict[str, Any]:
        """The composed config, each (name, overrides) composed once per Study: the evaluations of a
        study compose the same few configs again and again (a fifth of a second each); callers get
        their own copy to change."""
        key = (config_name, tuple(overrides))
        if key not in self._composed:
            self._composed[key] = _compose(config_name, overrides)
        return copy.deepcopy(self._composed[key])

    def _paths(self) -> list[str]:
        return [f"paths.data_root={self.data_root}", f"paths.runs={self.runs}"]

    def _stage(self, name: str, done: Callable[[], bool], fn: Callable[[], Any]) -> Any:
        if done():
            self.console.print(f"[green]✓[/green] {name} (done earlier, skipped)")
            return None
        self.console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        out = fn()
        self.timings[name] = round(time.perf_counter() - t0, 1)
        self.console.print(f"[green]✓[/green] {name} in {self.timings[name]:.0f} s")
        return out

    # ----- stages -----------------------------------------------------------------------------------
    def synth(self) -> None:
        from echojepa.synth.ensure import ensure_world, stale_reason

        w = self.cfg["world"]
        self._stage(
            f"synthetic world ({w['preset']})",
            # complete (manifest written last) and written by this generator with these settings
            lambda: (
                (self.world / "manifest.json").exists()
                and stale_reason(self.world, w["preset"], w["seed"]) is None
            ),
            lambda: ensure_world(self.world, w["preset"], w["seed"]),
        )

    # ----- seeds: the study's own, then each repeat seed (RepeatSpec) ----------------------------------
    def repeat_seeds(self) -> list[int]:
        return list((self.cfg.get("repeats") or {}).get("seeds", []))

    def _seed(self, seed: int | None) -> int:
        return self.cfg["seed"] if seed is None else int(seed)

    def _suffix(self, seed: int | None) -> str:
        """'' for the study's own seed (paths and names as without repeats), '-seed<k>' for a repeat."""
        return "" if self._seed(seed) == self.cfg["seed"] else f"-seed{self._seed(seed)}"

    def pretrain_dir(self, objective: str, seed: int | None = None) -> Path:
        return self.runs / "pretrain" / f"{objective}{self._suffix(seed)}"

    def pretrain_runs(self) -> dict[str, Path]:
        """Every pretraining run of the study by name (`jepa`, then a repeat's `jepa-seed1`) -> its folder."""
        return {
            f"{objective}{self._suffix(seed)}": self.pretrain_dir(objective, seed)
            for seed in [self.cfg["seed"], *self.repeat_seeds()]
            for objective in self.cfg["pretrain"]
        }

    def pretrain_cfg(
        self, objective: str, extra: list[str] | None = None, seed: int | None = None
    ) -> dict[str, Any]:
        p = self.cfg["pretrain"][objective]
        w = self.cfg["world"]
        cfg = self._compose("train", [
            f"experiment={p['experiment']}", *self._paths(), f"data.synth.preset={w['preset']}",
            f"data.synth.seed={w['seed']}", "trainer.enable_progress_bar=true", f"seed={self._seed(seed)}",
            *p.get("overrides", []), *(extra or []),
        ])  # fmt: skip
        cfg["run_name"] = f"{cfg['run_name']}{self._suffix(seed)}"  # a repeat's curves keep their own name
        return cfg

    def pretrain(self, objective: str, seed: int | None = None) -> None:
        from echojepa.pretrain.run import pretrain

        out = self.pretrain_dir(objective, seed)
        self._stage(
            f"pretrain {objective}{self._suffix(seed)}",
            lambda: (out / "summary.json").exists(),
            lambda: pretrain(self.pretrain_cfg(objective, seed=seed), out),
        )

    def trial_dir(self, recipe: str) -> Path:
        return self.runs / "recipes" / recipe

    def check_recipes(self, names: Sequence[str]) -> None:
        """Refuse a recipe name the study does not have (ValueError naming the ones it has)."""
        recipes = self.cfg.get("recipes", {})
        unknown = sorted(set(names) - set(recipes))
        if unknown:
            raise ValueError(f"study {self.cfg['name']} has no recipe {unknown}; it has {sorted(recipes)}")

    def trials(self, only: Sequence[str] | None = None) -> dict[str, Any]:
        """Pretrain every candidate recipe of the study (`recipes`; `only`: these names) and gather its
        online-probe curve: view accuracy and EF MAE of the current encoder on the fixed validation
        subsets, never test. Written to runs/recipes/recipes.json (trials run earlier under this root are
        kept in it) and printed; choosing among them stays the user's (the study's `pretrain` overrides
        say which was chosen and on which figure)."""
        from echojepa.pretrain.run import pretrain
        from echojepa.report.recipes import read_trial, recipes_table

        recipes = self.cfg.get("recipes", {})
        self.check_recipes(only or [])
        self.synth()
        index = self.runs / "recipes" / "recipes.json"
        trials = json.loads(index.read_text()) if index.exists() else {}
        for name, spec in recipes.items():
            if only and name not in only:
                continue
            out = self.trial_dir(name)
            tracked = [f"run_name=recipe-{name}", "logger.experiment_name=echojepa-recipes"]
            cfg = self.pretrain_cfg(spec["pretrain"], [*spec.get("overrides", []), *tracked])
            self._stage(f"recipe {name}", lambda out=out: (out / "summary.json").exists(),
                        lambda cfg=cfg, out=out: pretrain(cfg, out))  # fmt: skip
            trials[name] = read_trial(out, spec["pretrain"], spec.get("overrides", []))
            # after every trial: an interrupted comparison keeps what it measured
            atomic_write_text(index, json.dumps(trials, indent=1))
        self.console.print(recipes_table(trials))
        return trials

    def backbone_cfg(self, name: str, seed: int | None = None) -> dict[str, Any]:
        """The backbone row `name` at `seed`: a repeat seed takes that seed's pretraining runs, and a
        backbone drawn from a seed of its own (the random-init encoder) is drawn with the repeat seed."""
        b = self.cfg["backbones"][name]
        cfg = self._compose("evaluate", [f"backbone={b['preset']}", *b.get("overrides", [])])["backbone"]
        cfg["name"] = name
        source = b.get("checkpoint_from") or b.get("model_from")
        if source:
            cfg["model"] = self.pretrain_cfg(source, seed=seed)["model"]
        if b.get("checkpoint_from"):
            cfg["checkpoint"] = str(self.pretrain_dir(b["checkpoint_from"], seed) / "reference.pt")
        if self._suffix(seed) and "seed" in cfg:
            cfg["seed"] = self._seed(seed)
        return cfg

    def evaluation_cfg(
        self, backbone: str, task: str, protocol: str, seed: int | None = None
    ) -> dict[str, Any]:
        w = self.cfg["world"]
        cfg = self._compose("evaluate", [
            f"task={task}", f"protocol={protocol}", f"probe={self.cfg['probe']}", *self._paths(),
            f"synth.preset={w['preset']}", f"synth.seed={w['seed']}", f"seed={self._seed(seed)}",
            *self.cfg.get("probe_overrides", []), *self.cfg.get("evaluation_overrides", []),
        ])  # fmt: skip
        cfg["backbone"] = self.backbone_cfg(backbone, seed)
        return cfg

    def _marker(self, backbone: str, task: str, protocol: str, seed: int | None = None) -> Path:
        return self.runs / "study-markers" / f"{task}-{protocol}-{backbone}{self._suffix(seed)}.json"

    def standard_probe(self, backbone: str, task: str, seed: int | None = None) -> Path:
        """The head the standard protocol saved for this backbone and task (echojepa.probe.evaluation)."""
        from echojepa.probe.evaluation import probe_checkpoint_path

        return probe_checkpoint_path(self.store, task, backbone, "standard", "internal", self._seed(seed))

    def evaluation_runs(
        self, backbone: str, task: str, protocol: str, seed: int | None = None
    ) -> list[dict[str, Any]]:
        """The probe runs (composed configs) that make up one evaluation.

        With ``reuse_standard_probe`` and the task's standard protocol among the study's evaluations (run
        first), robustness and pediatric zero-shot evaluate the standard head rather than train the same
        head again: the same config, seed and training data, so nothing but time changes, and the
        robustness table's `original` row is the standard table's head by construction. Pediatric
        fine-tuning is then a run of its own, trained on the pediatric folds."""
        cfg = self.evaluation_cfg(backbone, task, protocol, seed)
        reusable = protocol in ("robustness", "pediatric_transfer") and not cfg.get("probe_checkpoint")
        order = [list(e) for e in self._evaluations(seed)]
        standard_first = (
            [task, "standard"] in order
            and [task, protocol] in order
            and (order.index([task, "standard"]) < order.index([task, protocol]))
        )
        if not (self.cfg.get("reuse_standard_probe") and reusable and standard_first):
            return [cfg]
        saved = {**copy.deepcopy(cfg), "probe_checkpoint": str(self.standard_probe(backbone, task, seed))}
        if protocol == "robustness":
            return [saved]
        conditions = list(cfg["protocol"]["conditions"])
        runs = [saved] if "zero_shot" in conditions else []
        if "fine_tuned" in conditions:
            runs.append({**cfg, "protocol": {**cfg["protocol"], "conditions": ["fine_tuned"]}})
        return runs

    def _evaluations(self, seed: int | None = None) -> list[list[str]]:
        """The (task, protocol) pairs run at `seed`: all of them at the study's seed, a repeat's at others."""
        if not self._suffix(seed):
            return [list(e) for e in self.cfg["evaluations"]]
        return [list(e) for e in self.cfg["repeats"]["evaluations"]]

    def evaluate(self, seed: int | None = None) -> None:
        from echojepa.probe.runner import run_probe

        for task, protocol in self._evaluations(seed):
            for backbone in self.cfg["backbones"]:
                marker = self._marker(backbone, task, protocol, seed)

                def run(backbone=backbone, task=task, protocol=protocol, marker=marker) -> None:
                    runs = self.evaluation_runs(backbone, task, protocol, seed)
                    written = [p for cfg in runs for p in run_probe(cfg)]
                    atomic_write_text(marker, json.dumps([str(p) for p in written], indent=1))

                name = f"probe {task}/{protocol} on {backbone}{self._suffix(seed)}"
                self._stage(name, marker.exists, run)

    def bundle(self) -> Path:
        from echojepa.predict import make_bundle

        name = self.cfg["predict_bundle_backbone"]
        out = self.runs / "model" / f"{name}.bundle.pt"
        probes = {t: self.standard_probe(name, t) for t in ("view", "lvef")}
        self._stage(
            "model bundle for echojepa-predict",
            out.exists,
            lambda: make_bundle(out, self.backbone_cfg(name), probes),
        )
        return out

    def pretrain_curves(self) -> dict[str, tuple[list[int], list[float]]]:
        """Loss curves from the MLflow store (or nothing when pretraining logged elsewhere)."""
        import mlflow

        curves: dict[str, tuple[list[int], list[float]]] = {}
        db = self.mlflow_db
        if not db.exists():
            return curves
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
        exp = client.get_experiment_by_name("echojepa-pretrain")
        if exp is None:
            return curves
        for run in client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"]):
            parts = run.info.run_name.split("-")  # <objective>-<model>, then -seed<k> for a repeat
            name = parts[0] + (f"-{parts[-1]}" if len(parts) > 2 and parts[-1].startswith("seed") else "")
            if name in curves:
                continue
            hist = client.get_metric_history(run.info.run_id, "train/loss_step")
            curves[name] = ([m.step for m in hist], [m.value for m in hist])
        return curves

    def pretrain_gflops(self) -> dict[str, float]:
        """Each objective's measured training compute (`gflops_total` in its run's summary.json)."""
        totals = {}
        for objective in self.cfg["pretrain"]:
            path = self.pretrain_dir(objective) / "summary.json"
            total = json.loads(path.read_text()).get("gflops_total") if path.exists() else None
            if total is not None:
                totals[objective] = total
        return totals

    def attention_examples(self, bundle: Path) -> dict[str, Path]:
        """Attention maps of the bundled model on a few test clips (an A4C AVI and MIMIC DICOMs)."""
        from echojepa.predict import InferenceSession

        out = self.runs / "report" / "attention"
        files = sorted((self.world / "echonet_dynamic" / "Videos").glob("*.avi"))[:1]
        files += sorted((self.world / "mimic_iv_echo" / "files").rglob("*.dcm"))[:2]
        session = InferenceSession.from_bundle(bundle)
        figures = {}
        for f in files:
            r = session.predict_file(f, attention_dir=out)
            png = (r.get("attention") or {}).get("png") if r.get("scorable") else None
            if png:
                lvef = f", LVEF {r['lvef']:.1f}%" if r.get("lvef") is not None else ""
                figures[f"Probe attention on {f.name} (predicted view {r['view']['top']}{lvef})"] = Path(png)
        return figures

    def report(self, bundle: Path | None = None) -> dict[str, Any]:
        from echojepa.report.build import build_report, print_tables

        out = self.runs / "report"
        extra = self.attention_examples(bundle) if bundle is not None and bundle.exists() else None
        result = build_report(
            self.store,
            out,
            title=f"EchoJEPA suite — {self.cfg['name']} study (synthetic world)",
            pretrain_curves=self.pretrain_curves(),
            pretrain_gflops=self.pretrain_gflops(),
            online_probes={
                name: path / "online_probe.csv"
                for name, path in self.pretrain_runs().items()
                if (path / "online_probe.csv").exists()
            },
            extra_figures=extra,
        )
        print_tables(self.store, console=self.console)
        self.console.print(f"report: {result.get('markdown', out / 'report.md')}")
        return result

    def rebuild_report(self) -> dict[str, Any]:
        """Draw a finished study's report again from its records, with this checkout's report code:
        nothing is trained or evaluated. The study summary, returned, keeps the run's commit and wall
        time and gains `report_commit` (published in the provenance). Raises FileNotFoundError for a
        study that has not finished."""
        summary_path = self.runs / "study-summary.json"
        if not summary_path.exists():
            raise FileNotFoundError(f"{summary_path}: no finished study here to report on (run it first)")
        name = self.cfg["predict_bundle_backbone"]
        result = self.report(self.runs / "model" / f"{name}.bundle.pt")
        report = {k: str(v) for k, v in result.items() if k in ("markdown", "html")}
        summary = json.loads(summary_path.read_text()) | {"report": report, "report_commit": git_commit()}
        atomic_write_text(summary_path, json.dumps(summary, indent=2))
        return summary

    def publish(self, dest: Path, command: str) -> Path:
        """Copy what a study found (not its caches) to `dest` for committing: the report (markdown and
        figures), the study summary with stage timings, each pretraining run's summary and online-probe
        curve, the recipe trials, and provenance (command, git commit, date, wall time, machine). The
        commit is the one the run started at (study-summary.json), not the checkout's at publish time,
        which may have moved on while a long study ran."""
        import platform
        from datetime import UTC, datetime

        from echojepa.io.atomic import atomic_write_bytes

        def copy(src: Path, name: str) -> None:  # atomically, like every output: never half a file
            atomic_write_bytes(dest / name, src.read_bytes())

        dest = Path(dest)
        (dest / "figures").mkdir(parents=True, exist_ok=True)
        report = self.runs / "report"
        if (report / "report.md").exists():  # a --trials run has no report yet
            copy(report / "report.md", "report.md")
        fresh = sorted((report / "figures").glob("*.png"))
        for png in fresh:
            copy(png, f"figures/{png.name}")
        # a figure an earlier publish wrote and this report no longer draws (an attention map whose
        # file name carries the prediction) would sit in the folder unreferenced: drop it
        for stale in sorted(
            set((dest / "figures").glob("*.png")) - {dest / "figures" / p.name for p in fresh}
        ):
            stale.unlink()
        summary_path = self.runs / "study-summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        found = {"study-summary.json": summary_path, "recipes.json": self.runs / "recipes" / "recipes.json"}
        for name, src in found.items():
            if src.exists():
                copy(src, name)
        for run_name, run_dir in self.pretrain_runs().items():
            for name in ("summary.json", "online_probe.csv"):
                src = run_dir / name
                if src.exists():
                    copy(src, f"pretrain-{run_name}-{name}")
        # A report redrawn later (--report-only) keeps the run's own command from the earlier publish
        # of the same run; the redraw's command is recorded beside it.
        earlier_path = dest / "provenance.json"
        earlier = json.loads(earlier_path.read_text()) if earlier_path.exists() else {}
        redrawn = bool(summary.get("report_commit"))
        same_run = earlier.get("commit") == (summary.get("commit") or git_commit())
        run_command = earlier.get("command") if redrawn and same_run else None
        provenance = {
            "command": run_command or command,
            **({"report_command": command} if redrawn else {}),
            "commit": summary.get("commit") or git_commit(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_s": summary.get("seconds"),
            **({"report_commit": summary["report_commit"]} if summary.get("report_commit") else {}),
            "stages_s": summary.get("stages"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        }
        atomic_write_text(dest / "provenance.json", json.dumps(provenance, indent=2))
        return dest

    def run(self) -> dict[str, Any]:
        from echojepa.tracking import ensure_tracking_store

        t0 = time.perf_counter()
        commit = git_commit()  # the code this run starts with (publish names it, not a later checkout)
        # the store exists before any stage logs: two studies sharing runs/ never race to create it
        ensure_tracking_store(f"sqlite:///{self.mlflow_db}")
        self.synth()
        for seed in [self.cfg["seed"], *self.repeat_seeds()]:  # the study's seed complete first
            for objective in self.cfg["pretrain"]:
                self.pretrain(objective, seed)
            self.evaluate(seed)
        bundle = self.bundle()
        result = self.report(bundle)
        summary = {
            "study": self.cfg["name"],
            "root": str(self.root),
            "commit": commit,
            "seconds": round(time.perf_counter() - t0, 1),
            "stages": self.timings,
            "report": {k: str(v) for k, v in result.items() if k in ("markdown", "html")},
        }
        atomic_write_text(self.runs / "study-summary.json", json.dumps(summary, indent=2))
        return summary
