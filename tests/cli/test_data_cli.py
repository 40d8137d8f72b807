"""`echojepa-data`: exit codes, printed reports, inspect's JSON, and no patient identifiers anywhere."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from echojepa.cli.data import main

HEADER = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]
IDENTIFIERS = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN-4455667",
    "PatientBirthDate": "19510203",
    "AccessionNumber": "ACC-99881",
    "InstitutionName": "Saint Nowhere Hospital",
}


def _frames(n: int = 4, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, size=(n, size, size, 3), dtype=np.uint8)  # [T, H, W, 3]


def _dynamic(root: Path) -> Path:
    from echojepa.io.video import write_video

    (root / "Videos").mkdir(parents=True)
    with (root / "FileList.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i, split in enumerate(("TRAIN", "VAL", "TEST")):
            w.writerow([f"v{i}", 50 + i, 20, 45, 16, 16, 25, 4, split])
            write_video(root / "Videos" / f"v{i}.avi", _frames(), 25.0)
    return root


def test_check_exits_0_on_a_good_dataset(tmp_path: Path, capsys) -> None:
    assert main(["check", "--format", "echonet_dynamic", "--root", str(_dynamic(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "ef" in out


def test_check_exits_1_and_lists_each_bad_file_with_its_reason(tmp_path: Path, capsys) -> None:
    root = _dynamic(tmp_path)
    (root / "Videos" / "v1.avi").write_bytes(b"not a video")
    (root / "Videos" / "v2.avi").unlink()
    assert main(["check", "--format", "echonet_dynamic", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    bad = [line for line in out.splitlines() if line.startswith("BAD")]
    assert len(bad) == 2
    assert any("v1.avi" in line for line in bad)
    assert any("v2.avi" in line and "missing" in line for line in bad)


def test_check_json_is_the_report(tmp_path: Path, capsys) -> None:
    root = _dynamic(tmp_path)
    assert main(["check", "--format", "echonet_dynamic", "--root", str(root), "--json", "--no-decode"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["counts"] == {"train": 1, "val": 1, "test": 1}
    assert data["label_stats"]["ef"]["n"] == 3 and data["decoded"] is False


def test_check_passes_reader_options(tmp_path: Path, capsys) -> None:
    root = _dynamic(tmp_path)
    code = main(["check", "--format", "echonet_dynamic", "--root", str(root), "-o", "test_fold=3"])
    assert code == 2 and "test_fold" in capsys.readouterr().err


def test_check_missing_root_is_one_line_on_stderr_and_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["check", "--format", "mimic", "--root", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "absent" in err[0] and "does not exist" in err[0]


def test_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--format", "camus", "--root", str(tmp_path)])
    assert exit_info.value.code == 2


def test_inspect_json_has_exactly_the_video_info_keys(tmp_path: Path, capsys) -> None:
    from echojepa.io.video import write_video

    path = tmp_path / "clip.avi"
    write_video(path, _frames(5, 32), 30.0)
    assert main(["inspect", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["frames", "fps", "height", "width", "format", "kind", "region"]
    assert (data["frames"], data["height"], data["width"], data["kind"]) == (5, 32, 32, "cine")


def test_inspect_preview_writes_a_png(tmp_path: Path, capsys) -> None:
    from echojepa.io.video import write_video

    path = tmp_path / "clip.avi"
    write_video(path, _frames(12, 32), 30.0)
    preview = tmp_path / "sheet.png"
    assert main(["inspect", str(path), "--preview", str(preview), "--preview-frames", "4"]) == 0
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "preview" in capsys.readouterr().out


def test_inspect_prints_a_long_path_whole_on_one_line(tmp_path: Path, capsys) -> None:
    from echojepa.io.video import write_video

    deep = tmp_path / ("a_folder_name_long_enough_to_push_the_path_past_any_terminal_width_" * 2)
    deep.mkdir()
    path = deep / "clip.avi"
    write_video(path, _frames(12, 32), 30.0)
    assert main(["inspect", str(path)]) == 0
    assert str(path) in capsys.readouterr().out.splitlines()


def test_inspect_dicom_never_shows_patient_identifiers(tmp_path: Path, capsys) -> None:
    from echojepa.io.dicom_writer import write_dicom

    path = tmp_path / "study.dcm"
    write_dicom(path, _frames(4, 32), 30.0, identifiers=IDENTIFIERS)
    preview = tmp_path / "p.png"
    assert main(["inspect", str(path)]) == 0
    assert main(["inspect", str(path), "--json", "--preview", str(preview)]) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    for value in IDENTIFIERS.values():
        for part in value.split("^"):
            assert part not in text
    assert json.loads(captured.out.strip().splitlines()[-1])["format"] == "dicom"


def test_inspect_unreadable_file_is_one_line_naming_it_and_exit_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "broken.avi"
    path.write_bytes(b"\x00" * 64)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.avi" in err[0]


def test_synth_calls_generate_with_the_arguments(tmp_path: Path, monkeypatch, capsys) -> None:
    import echojepa.synth

    calls = []

    def fake_generate(out, preset, seed=0, preview=None, progress=True):
        calls.append((out, preset, seed, preview, progress))
        return {"videos": 3}

    monkeypatch.setattr(echojepa.synth, "generate", fake_generate, raising=False)
    assert main(["synth", "--out", str(tmp_path / "w"), "--preset", "tiny", "--seed", "7"]) == 0
    assert calls == [(tmp_path / "w", "tiny", 7, None, True)]
    assert '"videos": 3' in capsys.readouterr().out


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def no_generate(monkeypatch):
    """generate() must not start: a refused `synth` is decided before any work."""
    import echojepa.synth

    monkeypatch.setattr(
        echojepa.synth, "generate", lambda *a, **k: pytest.fail("generate ran"), raising=False
    )


def test_synth_out_on_an_existing_file_is_one_line_and_exit_2(tmp_path: Path, capsys, no_generate) -> None:
    out = tmp_path / "world"
    out.write_text("not a folder")
    assert main(["synth", "--out", str(out), "--preset", "tiny"]) == 2
    line = _one_line(capsys)
    assert str(out) in line and "not a folder" in line


def test_synth_out_on_an_unwritable_path_creates_nothing(tmp_path: Path, capsys, no_generate) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["synth", "--out", str(blocker / "sub" / "world"), "--preset", "tiny"]) == 2
    line = _one_line(capsys)
    assert str(blocker / "sub" / "world") in line and "not a folder" in line
    preview = blocker / "sheet.png"
    assert main(["synth", "--out", str(tmp_path / "w"), "--preset", "tiny", "--preview", str(preview)]) == 2
    assert str(preview) in _one_line(capsys)
    assert not (tmp_path / "w").exists()  # a refused run leaves no folder behind


def test_synth_write_failure_mid_run_is_one_line_naming_the_file(tmp_path: Path, monkeypatch, capsys) -> None:
    import echojepa.synth

    def disk_full(out, *args, **kwargs):
        raise OSError(28, "No space left on device", str(out / "mimic_iv_echo" / "x.dcm"))

    monkeypatch.setattr(echojepa.synth, "generate", disk_full, raising=False)
    assert main(["synth", "--out", str(tmp_path / "w"), "--preset", "tiny"]) == 2
    line = _one_line(capsys)
    assert "x.dcm" in line and "No space left on device" in line


def test_inspect_preview_to_an_unwritable_path_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    from echojepa.io.video import write_video

    path = tmp_path / "clip.avi"
    write_video(path, _frames(6, 32), 30.0)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for preview in (blocker / "p.png", tmp_path):  # under a file; a folder
        assert main(["inspect", str(path), "--preview", str(preview)]) == 2
        assert str(preview) in _one_line(capsys)
    assert main(["inspect", str(tmp_path)]) == 2
    assert "not a file" in _one_line(capsys)
