"""Candidate recipes read from their runs' online probes and laid out side by side."""

import json

from rich.console import Console

from echojepa.report.recipes import read_trial, recipes_table


def _trial_dir(tmp_path, name, view, ef):
    run = tmp_path / name
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"steps": 500, "elapsed_s": 75.0, "final_loss": 0.4}))
    rows = ["step,source,view_acc,ef_mae,seconds,cost_frac"]
    rows += [f"0,target,{view[0]},{ef[0]},1.0,0.9", "0,random_init,0.30,9.5,,", "0,pixel_stats,0.5,7.0,,"]
    rows += [
        "0,trivial,0.2,9.7,,",
        f"250,target,{view[1]},{ef[1]},0.5,0.05",
        f"500,target,{view[2]},{ef[2]},0.5,0.04",
    ]
    (run / "online_probe.csv").write_text("\n".join(rows) + "\n")
    return run


def test_a_trial_keeps_its_curve_references_and_speed(tmp_path):
    run = _trial_dir(tmp_path, "a", (0.25, 0.40, 0.35), (9.8, 9.1, 9.3))
    t = read_trial(run, "jepa", ["trainer.max_steps=500"])
    assert t["curves"]["view_acc"] == {"steps": [0, 250, 500], "values": [0.25, 0.40, 0.35]}
    assert t["references"]["random_init"] == {"view_acc": 0.30, "ef_mae": 9.5}
    assert (t["steps"], t["elapsed_s"], t["overrides"]) == (500, 75.0, ["trainer.max_steps=500"])


def test_the_table_shows_final_and_best_with_best_meaning_higher_accuracy_lower_mae(tmp_path):
    trials = {
        "a": read_trial(_trial_dir(tmp_path, "a", (0.25, 0.40, 0.35), (9.8, 9.1, 9.3)), "jepa", []),
        "b": read_trial(_trial_dir(tmp_path, "b", (0.25, 0.30, 0.45), (9.8, 9.6, 9.0)), "jepa", ["x=1"]),
    }
    console = Console(width=200, record=True)
    console.print(recipes_table(trials))
    text = console.export_text()
    row_a = next(line for line in text.splitlines() if "│ a " in line)
    assert "35.0%" in row_a and "40.0%" in row_a and "9.30" in row_a and "9.10" in row_a
    assert "0.150" in row_a  # seconds per step
    assert "random_init" in text and "pixel_stats" in text
