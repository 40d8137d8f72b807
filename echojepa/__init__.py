"""EchoJEPA suite: latent-prediction foundation models for echocardiography video."""

__version__ = "0.1.0"
