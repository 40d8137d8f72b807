"""probe.task_epochs / task_grid / task_aug_views: a task's own budget reaches the training loop and nothing
else's."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR
from echojepa.probe import training
from echojepa.probe.errors import ProbeInputError
from echojepa.probe.runner import run_probe
from echojepa.probe.task_settings import with_task_settings


def _cfg(task: str, *extra: str, tmp: Path | None = None) -> dict:
    tmp = tmp or Path("/nonexistent")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_plain(compose("evaluate", overrides=[
            f"task={task}", "protocol=standard", "backbone=pixel_stats", "probe=attentive_cpu",
            "mlflow.enabled=false", "num_workers=0", f"store={tmp / 'store'}", f"cache_dir={tmp / 'cache'}",
            *extra,
        ]))  # fmt: skip


BUDGET = ["+probe.task_epochs.lvef=7", "+probe.task_grid.lvef=cpu_lr_high"]


def test_the_named_task_gets_its_epochs_and_grid():
    cfg = _cfg("lvef", *BUDGET)
    out = with_task_settings(cfg)
    assert out["probe"]["epochs"] == 7
    assert out["probe"]["grid"] == cfg["probe"]["grids"]["cpu_lr_high"]
    assert out["probe"]["grid_preset"] == "cpu_lr_high"
    assert cfg["probe"]["epochs"] == 30  # the input is left as it was


def test_other_tasks_keep_the_probe_budget():
    cfg = _cfg("view", *BUDGET)
    assert with_task_settings(cfg) is cfg


@pytest.mark.parametrize(
    "override, message",
    [("+probe.task_grid.lvef=no_such_grid", "no grid 'no_such_grid'"),
     ("+probe.task_epochs.lvef=0", "integer >= 1")],
)  # fmt: skip
def test_a_bad_task_budget_is_refused_in_one_line(override, message):
    with pytest.raises(ProbeInputError, match=message):
        with_task_settings(_cfg("lvef", override))


def test_a_probe_run_trains_the_tasks_epochs_on_the_tasks_grid(synth_small, tmp_path, monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    def spy(bank, train_loader, val_loader, task, epochs, *a, **k):
        seen.update(epochs=epochs, lrs=sorted({s.lr for s in bank.specs}))
        raise Stop

    monkeypatch.setattr(training, "train_probe_bank", spy)
    cfg = _cfg("lvef", *BUDGET, tmp=tmp_path)
    for ds in cfg["task"]["datasets"].values():  # the session's small world
        ds["root"] = str(synth_small / Path(ds["root"]).name)
    with pytest.raises(Stop):
        run_probe(cfg, progress=False)
    assert seen == {"epochs": 7, "lrs": [1.0e-3, 3.0e-3]}


def test_the_named_task_gets_its_augmented_views_and_others_do_not():
    out = with_task_settings(_cfg("lvef", "+probe.task_aug_views.lvef=4"))
    assert out["probe"]["aug_views"] == 4
    view = _cfg("view", "+probe.task_aug_views.lvef=4")
    assert with_task_settings(view)["probe"]["aug_views"] == 0


def test_a_negative_augmented_view_count_is_refused_in_one_line():
    with pytest.raises(ProbeInputError, match="task_aug_views.lvef: must be an integer >= 0"):
        with_task_settings(_cfg("lvef", "+probe.task_aug_views.lvef=-1"))
