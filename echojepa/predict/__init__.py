"""Run a trained model on real files: view, LVEF (A4C only) and the probes' attention maps.

    options     PredictOptions: clip mode, view gates, batch size, how maps are drawn
    bundle      the model bundle: make_bundle writes one weights-only file (backbone config and weights,
                identity, each task's probe and clip sampling); load_bundle rebuilds and checks it
    prediction  InferenceSession: per-file decoding, clips, backbone once per distinct clip, chosen heads,
                view gating, unscorable files with their reason
    drawing     attention weights on the backbone's token grid -> overlaid PNG strip and animated GIF

Typical use: ``InferenceSession.from_bundle(path).predict_file(video, attention_dir=...)``
(``echojepa-predict`` is the command-line front end).
"""

from echojepa.predict.bundle import BUNDLE_FORMAT, BundleError, TaskHead, load_bundle, make_bundle
from echojepa.predict.options import PredictOptions
from echojepa.predict.prediction import InferenceSession

__all__ = [
    "BUNDLE_FORMAT",
    "BundleError",
    "InferenceSession",
    "PredictOptions",
    "TaskHead",
    "load_bundle",
    "make_bundle",
]
