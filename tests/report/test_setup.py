"""The setup table: what each backbone was given, read from the records' chosen entry."""

from __future__ import annotations

from echojepa.report.records import ResultSet
from echojepa.report.render import to_markdown
from echojepa.report.setup import setup_table

from .helpers import make_record


def _given(record: dict, frames: int, size: int, tokens: int, dim: int, depth: int = 2) -> dict:
    record["chosen"].update(
        epochs=30,
        steps=210,
        probe={
            "kind": "attentive", "width": 128, "depth": depth, "trainable_params": 380289,
            "input": {"frames": frames, "frame_step": 2, "img_size": size, "clips": 2,
                      "tokens_per_clip": tokens, "backbone_dim": dim},
        },
    )  # fmt: skip
    return record


def test_one_row_per_backbone_and_task_with_input_tokens_probe_and_steps() -> None:
    records = [
        _given(make_record("pixel_stats", "lvef", "standard", "internal", {"mae": 4.0}), 16, 64, 128, 7),
        _given(make_record("pixel_stats", "lvef", "standard", "external", {"mae": 5.0}), 16, 64, 128, 7),
        _given(
            make_record("echojepa", "view", "standard", "internal", {"accuracy": 0.6}), 16, 64, 128, 96, 1
        ),
        _given(make_record("echojepa", "lvef", "standard", "internal", {"mae": 6.0}), 16, 64, 128, 96),
        make_record("train_mean", "lvef", "standard", "internal", {"mae": 8.0}),
    ]
    table = setup_table(ResultSet.from_records(records))
    rows = table.as_rows()
    assert [(r["model"], r["Task"]) for r in rows] == [
        ("pixel_stats", "lvef"), ("echojepa", "lvef"), ("echojepa", "view"),
    ]  # fmt: skip
    assert rows[0]["Input"] == "16 x 64px, step 2"
    assert rows[0]["Tokens / clip"] == "128 x 7" and rows[1]["Tokens / clip"] == "128 x 96"
    assert rows[1]["Probe"] == "attentive, depth 2, width 128" and rows[2]["Probe"].startswith(
        "attentive, depth 1"
    )
    assert rows[0]["Trainable params"] == rows[1]["Trainable params"] == "380,289"
    assert rows[0]["Probe steps"] == "210 (30 epochs)"
    assert table.missing == 0 and "What Each Backbone Was Given" in to_markdown(table)


def test_a_spatially_pooled_probe_says_so_in_the_probe_column() -> None:
    record = make_record("random_vit", "rvsp", "standard", "multi_view", {"mae": 9.0})
    record = _given(record, 16, 64, 128, 96)
    record["chosen"]["probe"]["space_grid"] = [1, 1]
    row = setup_table(ResultSet.from_records([record])).as_rows()[0]
    assert row["Probe"] == "attentive, depth 2, width 128, space pooled to 1 x 1"


def test_a_probe_trained_on_augmented_views_says_how_many_in_the_probe_column() -> None:
    record = _given(make_record("echojepa", "lvef", "standard", "internal", {"mae": 6.0}), 16, 64, 128, 96)
    record["chosen"]["probe"]["aug_views"] = 4
    row = setup_table(ResultSet.from_records([record])).as_rows()[0]
    assert row["Probe"] == "attentive, depth 2, width 128, 4 augmented train views"


def test_a_bf16_feature_pass_says_so_in_the_input_column() -> None:
    record = _given(make_record("echojepa", "lvef", "standard", "internal", {"mae": 6.0}), 16, 64, 128, 96)
    record["chosen"]["probe"]["input"]["feature_precision"] = "bf16-mixed"
    row = setup_table(ResultSet.from_records([record])).as_rows()[0]
    assert row["Input"] == "16 x 64px, step 2, bf16 forward"


def test_records_without_the_input_entry_show_missing_marks() -> None:
    table = setup_table(
        ResultSet.from_records([make_record("random_vit", "lvef", "standard", "internal", {"mae": 9.0})])
    )
    row = table.as_rows()[0]
    assert row["Input"] == row["Tokens / clip"] == row["Trainable params"] == "—"
