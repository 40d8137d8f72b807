"""From a task config to cached frozen features and probe inputs (targets, groups, token tensors).

``splits`` reads a task's datasets into cached features per split (TaskData, SplitData, clip_spec) and
gives a split's targets; ``single_view`` and ``multi_view`` turn a split into probe inputs (one item per
file, or one per study with a slot per view) with their collates; ``loading`` is their DataLoader.
"""

from __future__ import annotations

from echojepa.probe.taskdata.loading import loader
from echojepa.probe.taskdata.multi_view import ExamViews, MultiViewInputs, collate_multi, studies
from echojepa.probe.taskdata.single_view import SingleViewInputs, all_clip_groups, collate_single
from echojepa.probe.taskdata.splits import SplitData, TaskData, clip_spec, targets

__all__ = [
    "ExamViews",
    "MultiViewInputs",
    "SingleViewInputs",
    "SplitData",
    "TaskData",
    "all_clip_groups",
    "clip_spec",
    "collate_multi",
    "collate_single",
    "loader",
    "studies",
    "targets",
]
