"""EchoSynth: the built-in synthetic echo world (procedural hearts, ultrasound physics, real file layouts)."""

from echojepa.synth.config import SynthConfig, load_config
from echojepa.synth.writers import generate

__all__ = ["SynthConfig", "generate", "load_config"]
