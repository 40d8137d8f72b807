"""The `protocol` config group (conf/protocol/*.yaml): test-time clips, conditions and the sample
efficiency settings of an evaluation protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from echojepa.confkeys import register


@dataclass(frozen=True)
class ProtocolConfig:
    """conf/protocol/*.yaml."""

    name: str
    test_time: str = "one_clip"  # one_clip | all_clips
    conditions: list[str] = field(default_factory=lambda: ["internal"])
    multiview_conditions: list[str] | None = None  # standard, multi-view tasks
    fractions: list[float] | None = None  # sample_efficiency
    seeds: list[int] | None = None  # sample_efficiency
    min_patients: int = 1  # sample_efficiency


register("protocol", ProtocolConfig, "echojepa.probe.protocols")
