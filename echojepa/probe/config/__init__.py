"""The config groups of a probe evaluation (evaluate.yaml: backbone, task, probe, protocol and its own
keys), each as the schema of its reader, registered with echojepa.confkeys.

One module per group: ``probe`` (conf/probe), ``task`` (conf/task), ``protocol`` (conf/protocol),
``backbone`` (conf/backbone) and ``evaluate`` (evaluate.yaml's own keys, the whole config and
``check_evaluate_keys``). Importing this package registers every group's reader
(echojepa.confkeys.READER_MODULES names it).
"""

from __future__ import annotations

from echojepa.probe.config.backbone import (
    BACKBONE_KEYS,
    BACKBONE_SCHEMAS,
    EchoPrimeBackboneConfig,
    PanEchoBackboneConfig,
    PixelStatsBackboneConfig,
    VitBackboneConfig,
)
from echojepa.probe.config.evaluate import (
    BootstrapConfig,
    EvaluateConfig,
    FrameCacheConfig,
    MlflowConfig,
    check_evaluate_keys,
)
from echojepa.probe.config.probe import (
    HEAD_SET_BY_CODE,
    PROBE_KEYS,
    GridConfig,
    ProbeConfig,
    ProjectionConfig,
)
from echojepa.probe.config.protocol import ProtocolConfig
from echojepa.probe.config.task import BinaryEndpoint, DatasetSpec, MultiviewSpec, TaskClip, TaskSpec

__all__ = [
    "BACKBONE_KEYS",
    "BACKBONE_SCHEMAS",
    "HEAD_SET_BY_CODE",
    "PROBE_KEYS",
    "BinaryEndpoint",
    "BootstrapConfig",
    "DatasetSpec",
    "EchoPrimeBackboneConfig",
    "EvaluateConfig",
    "FrameCacheConfig",
    "GridConfig",
    "MlflowConfig",
    "MultiviewSpec",
    "PanEchoBackboneConfig",
    "PixelStatsBackboneConfig",
    "ProbeConfig",
    "ProjectionConfig",
    "ProtocolConfig",
    "TaskClip",
    "TaskSpec",
    "VitBackboneConfig",
    "check_evaluate_keys",
]
