"""Models: video ViT encoder with 3D RoPE, JEPA predictor, presets and released-layout checkpoints."""

from echojepa.models.predictor import Predictor
from echojepa.models.presets import ENCODER_PRESETS, MODEL_PRESETS, build_encoder, build_predictor
from echojepa.models.vit import VisionTransformer

__all__ = [
    "ENCODER_PRESETS",
    "MODEL_PRESETS",
    "Predictor",
    "VisionTransformer",
    "build_encoder",
    "build_predictor",
]
