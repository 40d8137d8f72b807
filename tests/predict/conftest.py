"""Shared fixtures of the echojepa.predict tests: one tiny world (backbone, two bundles, a few files)."""

from __future__ import annotations

import pytest
import torch

from echojepa.io import write_dicom, write_video
from echojepa.predict import InferenceSession, make_bundle
from echojepa.probe.backbones import build_backbone

from .helpers import IDENTIFIERS, backbone_cfg, cine, write_probes


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="package")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("predict")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = backbone_cfg()
    backbone = build_backbone(cfg)
    a4c = make_bundle(root / "a4c.bundle", cfg, write_probes(root, backbone, "A4C"))
    plax = make_bundle(root / "plax.bundle", cfg, write_probes(root, backbone, "PLAX"))
    files = root / "files"
    files.mkdir()
    frames = cine()
    write_video(files / "clip.avi", frames, 30.0)
    write_dicom(files / "study.dcm", frames, 25.0, identifiers=IDENTIFIERS)
    write_dicom(files / "still.dcm", frames[:1], None, kind="still", identifiers=IDENTIFIERS)
    write_dicom(files / "doppler.dcm", frames[:6], 30.0, kind="doppler", identifiers=IDENTIFIERS)
    (files / "corrupt.avi").write_bytes(b"not a video at all " * 64)
    torch.set_num_threads(before)
    return {"root": root, "cfg": cfg, "backbone": backbone, "a4c": a4c, "plax": plax, "files": files}


@pytest.fixture(scope="package")
def session(world) -> InferenceSession:
    return InferenceSession.from_bundle(world["a4c"])
