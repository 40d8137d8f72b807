import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest

from echojepa.data.tracings import ef_from_tracings, read_volume_tracings
from echojepa.io.video import container_info
from echojepa.synth import generate, load_config
from echojepa.synth.anatomy import VIEWS
from echojepa.synth.mimic_writer import PHI_CANARY

# a cut-down tiny world that still exercises every writer, for the byte-level determinism tests
SMALL = {
    "echonet.train": 1,
    "echonet.val": 0,
    "echonet.test": 1,
    "site_b.test": 1,
    "pediatric.exams": 1,
    "mimic.subjects": 1,
    "mimic.studies_per_subject": "[1,1]",
    "mimic.stills": 1,
    "mimic.doppler": 1,
    "video.frames": "[8,10]",
    "video.min_cycles": 0.3,
}
# |measured - nominal| EF seen over 60 tiny/demo videos was <= 1.7 points (frame sampling of ED/ES
# plus the demo's 1 % tracer noise); the test allows 2.5.
EF_TOLERANCE = 2.5


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f))


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json"  # holds the elapsed time
    }


@pytest.fixture(scope="module")
def small_worlds(tmp_path_factory):
    cfg = load_config("tiny", **SMALL)
    out = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        root = tmp_path_factory.mktemp(f"small-{name}")
        generate(root, cfg, seed=seed, progress=False)
        out[name] = root
    return out


def test_same_seed_writes_the_same_bytes(small_worlds):
    a, b = _hashes(small_worlds["a"]), _hashes(small_worlds["b"])
    assert len(a) > 10 and a == b


def test_another_seed_writes_other_data(small_worlds):
    a, c = _hashes(small_worlds["a"]), _hashes(small_worlds["c"])
    assert a.keys() == c.keys()
    videos = [k for k in a if k.endswith((".avi", ".dcm"))]
    assert all(a[k] != c[k] for k in videos)


def test_echonet_dynamic_layout_is_exact(synth_world):
    root = synth_world / "echonet_dynamic"
    assert _header(root / "FileList.csv") == [
        "FileName",
        "EF",
        "ESV",
        "EDV",
        "FrameHeight",
        "FrameWidth",
        "FPS",
        "NumberOfFrames",
        "Split",
    ]
    assert _header(root / "VolumeTracings.csv") == ["FileName", "X1", "Y1", "X2", "Y2", "Frame"]
    rows = _rows(root / "FileList.csv")
    assert {r["Split"] for r in rows} == {"TRAIN", "VAL", "TEST"}
    for r in rows:
        assert not r["FileName"].endswith(".avi")
        info = container_info(root / "Videos" / f"{r['FileName']}.avi")
        assert (info.height, info.width) == (112, 112) == (int(r["FrameHeight"]), int(r["FrameWidth"]))
        assert info.frames == int(r["NumberOfFrames"])
        assert info.fps == pytest.approx(float(r["FPS"]))
    tracings = read_volume_tracings(root / "VolumeTracings.csv")
    assert sorted(tracings) == sorted(f"{r['FileName']}.avi" for r in rows)
    for frames in tracings.values():
        assert len(frames) == 2 and all(v.shape == (21, 4) for v in frames.values())
    assert (root / "EchoSynthTruth.csv").is_file()


@pytest.mark.parametrize("dataset", ["echonet_dynamic", "echonet_dynamic_siteB"])
def test_filelist_ef_is_the_method_of_disks_on_the_written_tracings(synth_world, dataset):
    root = synth_world / dataset
    tracings = read_volume_tracings(root / "VolumeTracings.csv")
    truth = {r["FileName"]: r for r in _rows(root / "EchoSynthTruth.csv")}
    for r in _rows(root / "FileList.csv"):
        ef = ef_from_tracings(tracings[f"{r['FileName']}.avi"])
        assert abs(ef - float(r["EF"])) < 1.0
        assert ef == pytest.approx(float(r["EF"]), abs=1e-3)
        edv, esv = float(r["EDV"]), float(r["ESV"])
        assert 100 * (edv - esv) / edv == pytest.approx(float(r["EF"]), abs=1e-3)
        assert abs(float(r["EF"]) - float(truth[r["FileName"]]["ef_nominal"])) < EF_TOLERANCE


def test_traced_ed_and_es_frames_are_the_written_volume_extremes(synth_world):
    root = synth_world / "echonet_dynamic"
    tracings = read_volume_tracings(root / "VolumeTracings.csv")
    for t in _rows(root / "EchoSynthTruth.csv"):
        frames = tracings[f"{t['FileName']}.avi"]
        assert sorted(frames) == sorted({int(t["ed_frame"]), int(t["es_frame"])})
        ed_axis, es_axis = frames[int(t["ed_frame"])][0], frames[int(t["es_frame"])][0]
        # long-axis shortening: the ED long axis is the longer one
        assert np.hypot(*(ed_axis[2:] - ed_axis[:2])) > np.hypot(*(es_axis[2:] - es_axis[:2]))


def test_site_b_is_an_all_test_external_set(synth_world):
    rows = _rows(synth_world / "echonet_dynamic_siteB" / "FileList.csv")
    assert rows and {r["Split"] for r in rows} == {"TEST"}
    assert all(r["FileName"].startswith("SYN_B_") for r in rows)


def test_pediatric_layout_pairs_views_by_accession(synth_world):
    root = synth_world / "echonet_pediatric"
    folds = {}
    for view in ("A4C", "PSAX"):
        assert _header(root / view / "FileList.csv") == [
            "FileName",
            "EF",
            "Sex",
            "Age",
            "Weight",
            "Height",
            "Split",
        ]
        assert _header(root / view / "VolumeTracings.csv") == ["FileName", "X", "Y", "Frame"]
        rows = _rows(root / view / "FileList.csv")
        for r in rows:
            assert re.fullmatch(r"PSYN\d{4}-ACC\d{4}-\d{2}\.avi", r["FileName"])
            assert (root / view / "Videos" / r["FileName"]).is_file()
            assert 0 <= int(r["Split"]) <= 9 and r["Sex"] in ("M", "F") and 0 <= float(r["Age"]) <= 18
            folds.setdefault(r["FileName"].split("-")[1], set()).add((r["Split"], r["EF"]))
        traced = _rows(root / view / "VolumeTracings.csv")
        assert {t["FileName"] for t in traced} == {r["FileName"] for r in rows}
        per = {}
        for t in traced:
            per.setdefault((t["FileName"], t["Frame"]), []).append(t)
        assert all(len(v) >= 20 for v in per.values())
        assert len(per) == 2 * len(rows)
    assert all(len(v) == 1 for v in folds.values())  # one fold and one EF per exam across both views


def test_pediatric_hearts_are_smaller_than_adult_ones(synth_world):
    adult = [
        float(r["edv_nominal_ml"]) for r in _rows(synth_world / "echonet_dynamic" / "EchoSynthTruth.csv")
    ]
    child = [
        float(r["edv_nominal_ml"])
        for r in _rows(synth_world / "echonet_pediatric" / "A4C" / "EchoSynthTruth.csv")
    ]
    assert np.median(child) < 0.6 * np.median(adult)


def test_mimic_layout_record_list_and_labels(synth_world):
    root = synth_world / "mimic_iv_echo"
    assert _header(root / "echo-record-list.csv") == [
        "subject_id",
        "study_id",
        "acquisition_datetime",
        "dicom_filepath",
    ]
    assert _header(root / "labels.csv") == ["subject_id", "study_id", "lvef", "rvsp"]
    assert _header(root / "view_labels.csv") == ["dicom_filepath", "view"]
    records = _rows(root / "echo-record-list.csv")
    for r in records:
        sid, st = r["subject_id"], r["study_id"]
        assert re.fullmatch(rf"files/p{sid[:2]}/p{sid}/s{st}/{st}_\d{{4}}\.dcm", r["dicom_filepath"])
        assert (root / r["dicom_filepath"]).is_file()
    views = _rows(root / "view_labels.csv")
    assert {v["view"] for v in views} == set(VIEWS)
    assert len(records) > len(views)  # stills and Doppler files are listed too
    studies = {r["study_id"] for r in records}
    assert {r["study_id"] for r in _rows(root / "labels.csv")} == studies


def test_mimic_dicoms_carry_regions_fps_tags_and_mixed_photometrics(synth_world):
    root = synth_world / "mimic_iv_echo"
    cines = {v["dicom_filepath"] for v in _rows(root / "view_labels.csv")}
    photometrics, fps_tags, kinds = set(), set(), set()
    for r in _rows(root / "echo-record-list.csv"):
        ds = pydicom.dcmread(root / r["dicom_filepath"], stop_before_pixels=True)
        if r["dicom_filepath"] in cines:
            assert int(ds.NumberOfFrames) > 1 and ds.Rows == 160 and ds.Columns == 224
            photometrics.add(ds.PhotometricInterpretation)
            fps_tags.add("FrameTime" in ds)
            types = sorted(int(x.RegionDataType) for x in ds.SequenceOfUltrasoundRegions)
            assert types == [1, 0x0A]
        else:
            kinds.add(int(getattr(ds, "NumberOfFrames", 1)))
    assert photometrics == {"YBR_FULL_422", "RGB"}
    assert fps_tags == {True, False}  # some files carry only CineRate
    assert kinds == {1}


def test_ecg_and_text_lie_outside_the_tissue_region(synth_world):
    root = synth_world / "mimic_iv_echo"
    rel = _rows(root / "view_labels.csv")[0]["dicom_filepath"]
    ds = pydicom.dcmread(root / rel)
    tissue = next(x for x in ds.SequenceOfUltrasoundRegions if int(x.RegionDataType) == 1)
    frames = ds.pixel_array  # [T, H, W, 3] RGB after pydicom's conversion
    outside = np.ones(frames.shape[1:3], dtype=bool)
    outside[
        tissue.RegionLocationMinY0 : tissue.RegionLocationMaxY1 + 1,
        tissue.RegionLocationMinX0 : tissue.RegionLocationMaxX1 + 1,
    ] = False
    assert frames[0][outside].max() > 150  # burnt-in text / ECG trace exist outside the cone


def test_identifiers_stay_inside_the_dicoms(synth_world):
    root = synth_world / "mimic_iv_echo"
    rel = _rows(root / "view_labels.csv")[0]["dicom_filepath"]
    ds = pydicom.dcmread(root / rel, stop_before_pixels=True)
    assert PHI_CANARY in str(ds.PatientName) and PHI_CANARY in ds.PatientID
    for p in synth_world.rglob("*"):
        if p.suffix in (".csv", ".json"):
            assert PHI_CANARY not in p.read_text(), p


def test_manifest_counts(synth_world):
    m = json.loads((synth_world / "manifest.json").read_text())
    assert m["preset"] == "tiny" and m["seed"] == 0 and m["elapsed_s"] >= 0
    assert m["counts"]["echonet_dynamic"] == {"TRAIN": 4, "VAL": 2, "TEST": 2}
    assert m["counts"]["mimic_iv_echo"]["cines"] == len(
        _rows(synth_world / "mimic_iv_echo" / "view_labels.csv")
    )


def test_preview_contact_sheet(tmp_path):
    from echojepa.synth.preview import contact_sheet

    out = tmp_path / "sheet.png"
    contact_sheet(
        out, load_config("tiny", **{"video.frames": "[6,8]", "video.min_cycles": 0.2}), seed=0, size=48
    )
    assert out.stat().st_size > 5000


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown EchoSynth preset"):
        load_config("nope")


@pytest.mark.parametrize(
    ("fmt", "sub", "expected"),
    [
        ("echonet_dynamic", "echonet_dynamic", 8),
        ("echonet_dynamic", "echonet_dynamic_siteB", 3),
        ("echonet_pediatric", "echonet_pediatric", 6),
    ],
)
def test_the_dataset_readers_read_the_synthetic_layouts(synth_world, fmt, sub, expected):
    from echojepa.data.datasets import read_index

    index = read_index(fmt, synth_world / sub)
    assert len(index) == expected and not index.skipped


def test_the_mimic_reader_keeps_cines_and_flags_stills_and_doppler(synth_world):
    from echojepa.data.datasets import read_index

    index = read_index("mimic", synth_world / "mimic_iv_echo")
    n_cines = len(_rows(synth_world / "mimic_iv_echo" / "view_labels.csv"))
    assert len(index) == n_cines
    assert sorted(reason.split("kind=")[-1].rstrip(")") for _, reason in index.skipped) == [
        "doppler",
        "still",
    ]


def test_a_failed_write_mid_world_leaves_no_manifest_no_partial_file_and_no_temp(tmp_path, monkeypatch):
    import pydicom.dataset

    stale = tmp_path / "manifest.json"
    stale.write_text('{"preset": "an earlier world"}')
    real_save = pydicom.dataset.Dataset.save_as
    saved: list[int] = []

    def disk_full_on_the_second_dicom(self, target, *args, **kwargs):
        saved.append(1)
        if len(saved) == 2:
            target.write(b"DICM half a file")  # some bytes reach the disk, then the disk is full
            raise OSError(28, "No space left on device")
        return real_save(self, target, *args, **kwargs)

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", disk_full_on_the_second_dicom)
    with pytest.raises(OSError, match="No space left"):
        generate(tmp_path, load_config("tiny", **SMALL), seed=5, progress=False)
    assert not stale.exists()  # the world on disk is incomplete: nothing may say otherwise
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    dicoms = list(tmp_path.rglob("*.dcm"))
    assert len(dicoms) == 1 and pydicom.dcmread(dicoms[0]).NumberOfFrames > 1  # the first, whole


def test_world_files_and_folders_follow_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o027)
    try:
        generate(tmp_path / "w", load_config("tiny", **SMALL), seed=5, progress=False)
    finally:
        os.umask(old)
    paths = list((tmp_path / "w").rglob("*"))
    files = {stat.S_IMODE(p.stat().st_mode) for p in paths if p.is_file()}
    folders = {stat.S_IMODE(p.stat().st_mode) for p in paths if p.is_dir()}
    assert files == {0o640} and folders == {0o750}
