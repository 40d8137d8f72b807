"""`echojepa-predict`: tables or JSON per file, exit codes, and no patient identifier in any output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from echojepa.cli.predict import main
from echojepa.io import write_dicom, write_video
from echojepa.predict import make_bundle
from echojepa.probe.backbones import build_backbone, load_backbone_config
from echojepa.probe.bank import HeadSpec, ProbeBank
from echojepa.probe.checkpoint import save_probe
from echojepa.probe.fit import train_probe_bank
from echojepa.probe.task import ProbeTask

VIEWS = ["A4C", "A2C", "A3C", "A5C", "PLAX", "PSAX", "Subcostal"]
SECRETS = ("Doe^Jane", "Doe", "Jane", "MRN123456")


def _bank(dim: int, task: ProbeTask) -> tuple[ProbeBank, ProbeTask]:
    bank = ProbeBank("attentive", {"embed_dim": dim, "out_dim": task.out_dim, "depth": 1, "num_heads": 2},
                     [HeadSpec(1e-3, 0.0)])  # fmt: skip
    g = torch.Generator().manual_seed(0)
    y = (
        torch.tensor([0, 1, 0, 1])
        if task.kind == "classification"
        else torch.tensor([40.0, 50.0, 60.0, 70.0])
    )
    batch = {"tokens": torch.randn(4, 8, dim, generator=g), "mask": None, "target": y}
    return bank, train_probe_bank(bank, [batch], [batch], task, epochs=1).task


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("predict-cli")
    pre = {"img_size": 32, "num_frames": 4, "frame_step": 2, "target_fps": None, "segments": 1,
           "mean": [0.5] * 3, "std": [0.25] * 3}  # fmt: skip
    cfg = load_backbone_config("random_vit", preprocess=pre)
    backbone = build_backbone(cfg)
    probes = {}
    for name, task in (("view", ProbeTask("classification", num_classes=7, class_names=VIEWS)),
                       ("lvef", ProbeTask("regression"))):  # fmt: skip
        bank, task = _bank(backbone.embed_dim, task)
        if name == "view":
            with torch.no_grad():
                bank.heads[0].linear.bias[0] += 50.0  # A4C on top: LVEF gets reported
        probes[name] = root / f"{name}.pt"
        save_probe(probes[name], bank, task, {"backbone_identity": backbone.identity(), "chosen_head": 0})
    bundle = make_bundle(root / "model.bundle", cfg, probes)
    frames = np.random.default_rng(0).integers(0, 255, (12, 40, 48, 3), dtype=np.uint8)
    files = [root / "clip.avi", root / "study.dcm", root / "still.dcm", root / "broken.dcm"]
    write_video(files[0], frames, 30.0)
    write_dicom(files[1], frames, 30.0, identifiers={"PatientName": "Doe^Jane", "PatientID": "MRN123456"})
    write_dicom(files[2], frames[:1], None, kind="still", identifiers={"PatientName": "Doe^Jane"})
    files[3].write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 20)
    return {"root": root, "bundle": bundle, "files": files}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_scores_cines_and_reports_the_rest(setup, capsys, tmp_path):
    files = [str(f) for f in setup["files"]]
    code, out, err = _run(capsys, *files, "--checkpoint", str(setup["bundle"]), "--json", "--attention",
                          str(tmp_path))  # fmt: skip
    assert code == 0
    results = json.loads(out)
    assert [r["file"] for r in results] == files
    assert [r["scorable"] for r in results] == [True, True, False, False]
    assert results[0]["view"]["top"] == "A4C" and isinstance(results[0]["lvef"], float)
    assert results[2]["reason"] == "still image" and results[3]["reason"]
    assert Path(results[1]["attention"]["gif"]).is_file()
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for secret in SECRETS:
        assert secret not in out and secret not in err
    for secret in SECRETS[0], SECRETS[-1]:  # short strings turn up in compressed image bytes by chance
        assert secret.encode() not in written


def test_table_output_names_each_file_and_its_predictions(setup, capsys):
    code, out, _ = _run(capsys, *map(str, setup["files"][1:3]), "--checkpoint", str(setup["bundle"]))
    assert code == 0
    lines = out.splitlines()
    for f in setup["files"][1:3]:
        assert str(f) in lines  # the whole path on one line, however long (never wrapped)
    assert "A4C" in out and "lvef" in out and "still image" in out
    assert not any(secret in out for secret in SECRETS)


def test_missing_bundle_and_usage_errors_exit_2(setup, capsys, tmp_path):
    code, _, err = _run(capsys, str(setup["files"][0]), "--checkpoint", str(tmp_path / "none.bundle"))
    assert code == 2 and "not found" in err
    assert _run(capsys, "--checkpoint", str(setup["bundle"]))[0] == 2  # no FILE
    (tmp_path / "junk.bundle").write_bytes(b"junk")
    code, _, err = _run(capsys, str(setup["files"][0]), "--checkpoint", str(tmp_path / "junk.bundle"))
    assert code == 2 and "not a readable torch file" in err
    code, _, err = _run(
        capsys, str(setup["files"][0]), "--checkpoint", str(setup["bundle"]), "--device", "nope"
    )
    assert code == 2 and "--device" in err


def _tampered(setup, tmp_path: Path, name: str, edit) -> Path:
    ckpt = torch.load(setup["bundle"], weights_only=True)
    edit(ckpt)
    path = tmp_path / f"{name}.bundle"
    torch.save(ckpt, path)
    return path


MALFORMED = {
    "tasks_a_list": lambda c: c.__setitem__("tasks", ["view", "lvef"]),
    "state_dict_a_list": lambda c: c["backbone"].__setitem__("state_dict", [1]),
    "clip_with_a_foreign_key": lambda c: c["tasks"]["view"]["clip"].__setitem__("bogus", 1),
    "clip_a_string": lambda c: c["tasks"]["view"].__setitem__("clip", "center"),
    "config_a_string": lambda c: c["backbone"].__setitem__("config", "vit"),
    "chosen_head_text": lambda c: c["tasks"]["lvef"]["probe"]["meta"].__setitem__("chosen_head", "x"),
    "numpy_inside": lambda c: c.__setitem__("extra", np.arange(3)),  # needs code to unpickle
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_bundle_is_one_line_naming_it_and_exit_2(setup, capsys, tmp_path, name):
    bundle = _tampered(setup, tmp_path, name, MALFORMED[name])
    code, out, err = _run(capsys, str(setup["files"][0]), "--checkpoint", str(bundle))
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and str(bundle) in lines[0], err
    assert "Traceback" not in err and "weights_only" not in err


@pytest.mark.parametrize("kind", ["empty", "truncated", "a_directory"])
def test_an_unreadable_bundle_file_is_one_line_naming_it_and_exit_2(setup, capsys, tmp_path, kind):
    path = tmp_path / "model.bundle"
    if kind == "a_directory":
        path.mkdir()
    else:
        data = setup["bundle"].read_bytes()
        path.write_bytes(b"" if kind == "empty" else data[: len(data) // 2])
    code, _, err = _run(capsys, str(setup["files"][0]), "--checkpoint", str(path))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and str(path) in lines[0], err
    assert ("not a file" in lines[0]) == (kind == "a_directory")


def test_no_scorable_input_exits_1_and_a_directory_is_not_a_file(setup, capsys, tmp_path):
    folder = tmp_path / "videos.avi"
    folder.mkdir()
    still = setup["files"][2]
    code, out, err = _run(capsys, str(folder), str(still), "--checkpoint", str(setup["bundle"]), "--json")
    results = json.loads(out)
    assert code == 1 and [r["scorable"] for r in results] == [False, False]
    assert results[0]["reason"] == "not a file (a directory)"
    assert "none of the 2 input(s) could be scored" in err
