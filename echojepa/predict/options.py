"""How files are scored and attention maps drawn: ``PredictOptions``, parsed once at the boundary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from echojepa.confkeys import refuse_unknown

__all__ = ["PredictOptions"]


@dataclass(frozen=True)
class PredictOptions:
    """How files are scored and maps drawn. ``gates``: task -> the view class the view probe's top
    prediction must be for that task to be reported."""

    clip_mode: str = "center"  # "center" (the protocol's clips) or "all" (every window, averaged)
    gates: Mapping[str, str] = field(default_factory=lambda: {"lvef": "A4C"})
    batch_size: int = 8  # clips per backbone call
    attention_frames: int = 6  # frames per clip in the PNG strip
    attention_clips: int = 4  # clips per task drawn (the first ones)
    display_size: int = 160  # px per panel
    overlay_alpha: float = 0.45
    colormap: str = "inferno"
    gif_frame_ms: int = 120

    def __post_init__(self) -> None:
        if self.clip_mode not in ("center", "all"):
            raise ValueError(f"clip_mode must be 'center' or 'all', got {self.clip_mode!r}")
        if min(self.batch_size, self.attention_frames, self.attention_clips, self.display_size) < 1:
            raise ValueError(f"PredictOptions sizes must be >= 1, got {self}")
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise ValueError(f"overlay_alpha must be in [0, 1], got {self.overlay_alpha}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> PredictOptions:
        """Options from a plain mapping; refuses keys that are not options (a typo must not be ignored)."""
        refuse_unknown(cfg, cls.__dataclass_fields__, "predict options", ValueError)
        return cls(**dict(cfg))
