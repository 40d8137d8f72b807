"""Online probes: every N steps, how well the current encoder's features predict view and EF.

A pretraining loss that goes flat says nothing about whether the representation is useful; this
callback answers that during the run, with closed-form ridge probes on small labelled subsets of the
probe datasets, beside three references (random init, pixel statistics, trivial predictor).

    config    OnlineProbeConfig / TaskConfig: the `online_probe` config group, read strictly
              (OnlineProbeInputError, one line, before training starts)
    callback  OnlineProbe: the Lightning callback that encodes, fits, scores and logs without changing
              training (RNG and train/eval flags restored); OnlineTask, history_csv
    build     build_online_probe: the callback for a pretraining config (subsets drawn at build time,
              decoded at fit start)
"""

from echojepa.pretrain.online_probe.build import build_online_probe
from echojepa.pretrain.online_probe.callback import OnlineProbe, OnlineTask, history_csv
from echojepa.pretrain.online_probe.config import OnlineProbeConfig, OnlineProbeInputError, TaskConfig

__all__ = [
    "OnlineProbe",
    "OnlineProbeConfig",
    "OnlineProbeInputError",
    "OnlineTask",
    "TaskConfig",
    "build_online_probe",
    "history_csv",
]
