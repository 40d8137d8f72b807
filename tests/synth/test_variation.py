"""Per-video acquisition variation (`variation: realistic`): ranges, exact ground truth, the off switch."""

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from echojepa.data.tracings import ef_from_tracings, read_volume_tracings, volume_from_rows
from echojepa.io.video import write_video
from echojepa.synth import generate, load_config
from echojepa.synth.acoustics import full_frame_geometry
from echojepa.synth.anatomy import APICAL_VIEWS, LABELS, VIEWS
from echojepa.synth.config import VARIATION_MODES, preset_names
from echojepa.synth.variation import lv_inside, shown_heart, vary
from echojepa.synth.world import (
    acquire,
    render_video,
    rng_for,
    sample_acquisition,
    sample_patient,
    sample_timing,
    variation_rng,
)

CFG = load_config("tiny")
SITES = {"adult": ("A", "B"), "pediatric": ("pediatric",)}
# a cut-down tiny world that still writes every layout (as in test_writers)
SMALL = {
    "echonet.train": 2,
    "echonet.val": 0,
    "echonet.test": 1,
    "site_b.test": 1,
    "pediatric.exams": 1,
    "mimic.subjects": 1,
    "mimic.studies_per_subject": "[1,1]",
    "video.frames": "[8,10]",
    "video.min_cycles": 0.3,
}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _draws(pop: str, site: str, view: str, n: int):
    """n (patient, site draw, varied draw) triples of one population, site and view."""
    for i in range(n):
        patient = sample_patient(rng_for(7, "patient", pop, i), CFG.populations[pop], "p", pop)
        rng = rng_for(7, "clip", pop, site, view, i)
        view_depth = CFG.tissue.view_depth[view]
        site_acq = sample_acquisition(rng, CFG.sites[site], patient.heart.size, view_depth)
        varied = vary(
            rng_for(7, "vary", pop, site, view, i),
            site_acq,
            CFG.realistic[pop],
            patient.heart,
            patient.heart_rate_bpm,
            view,
            view_depth,
        )
        yield patient, site_acq, varied


def _within(x: float, lo_hi: list[float], scale: float = 1.0, offset: float = 0.0) -> bool:
    lo, hi = sorted((lo_hi[0] * scale + offset, lo_hi[1] * scale + offset))
    return lo - 1e-9 <= x <= hi + 1e-9


@pytest.mark.parametrize("pop", ["adult", "pediatric"])
@pytest.mark.parametrize("view", ["A4C", "PSAX", "Subcostal"])
def test_sampled_parameters_stay_within_the_configured_ranges(pop, view):
    var = CFG.realistic[pop]
    for site in SITES[pop]:
        for patient, s, v in _draws(pop, site, view, 40):
            a, size = v.acq, patient.heart.size
            assert v.fitted  # the LV was framed (views without a traced LV always are)
            assert _within(a.depth_cm, var.depth_per_size_cm, size * CFG.tissue.view_depth[view])
            assert _within(a.sector_deg, var.sector_deg) and _within(a.angle_deg, var.angle_deg)
            assert _within(a.rotation_deg, var.rotation_deg)
            assert _within(a.offset_x_cm, var.offset_x_cm, size)
            assert _within(a.offset_y_cm, var.offset_y_cm, size)
            assert _within(a.gain_db, var.gain_db, offset=s.gain_db)
            assert _within(a.dynamic_range_db, var.dynamic_range_db, offset=s.dynamic_range_db)
            assert len(a.tgc_db) == var.tgc_sliders and all(_within(x, var.tgc_db) for x in a.tgc_db)
            top = min(var.freq_mhz[1], var.penetration_cm_mhz / a.depth_cm)
            assert _within(a.freq_mhz, var.freq_mhz) and a.freq_mhz <= max(top, var.freq_mhz[0]) + 1e-9
            # speckle size follows the wavelength: the site's PSF at the site's frequency, scaled by 1/f
            assert a.psf_axial_cm * a.freq_mhz == pytest.approx(s.psf_axial_cm * s.freq_mhz)
            assert a.psf_lateral_deg * a.freq_mhz == pytest.approx(s.psf_lateral_deg * s.freq_mhz)
            assert _within(a.fps, var.fps) and v.fps_min == var.fps[0]
            jitter = 2 * var.heart_rate_jitter * patient.heart_rate_bpm
            assert _within(v.heart_rate_bpm, [-jitter, jitter], offset=patient.heart_rate_bpm)
            if view in APICAL_VIEWS:
                assert _within(a.foreshortening, var.foreshortening)
            else:
                assert a.foreshortening == 0.0
            for centre, width, db in a.shadows:
                assert _within(centre, [-a.sector_deg / 2, a.sector_deg / 2])
                assert _within(width, var.shadow_width_deg) and _within(db, var.shadow_db)
            # scanner traits stay the site's
            assert (a.gamma, a.clutter, a.speckle_static, a.white_level_db) == (
                s.gamma,
                s.clutter,
                s.speckle_static,
                s.white_level_db,
            )


@pytest.mark.parametrize("view", [*APICAL_VIEWS, "PSAX"])
def test_the_traced_lv_is_framed_inside_the_sector(view):
    for pop in ("adult", "pediatric"):
        for patient, _, v in _draws(pop, SITES[pop][0], view, 25):
            assert v.fitted
            shown = shown_heart(patient.heart, view, v.acq)
            assert lv_inside(v.acq, shown, view, CFG.realistic[pop].fit_margin_cm)
            aimed_away = dataclasses.replace(v.acq, angle_deg=v.acq.angle_deg + 70.0)
            assert not lv_inside(aimed_away, shown, view, 0.0)  # the check can fail


def test_two_videos_differ_in_every_varied_parameter():
    patient = sample_patient(rng_for(0, "patient"), CFG.populations["adult"], "p", "adult")
    clips = []
    for index in (0, 1):
        acq, shown, fps_min = acquire(
            rng_for(0, "clip", index), CFG, "A", patient, "A4C", variation_rng(CFG, 0, "clip", index)
        )
        clips.append((acq, shown))
    (a, pa), (b, pb) = clips
    for name in (
        "depth_cm",
        "sector_deg",
        "angle_deg",
        "rotation_deg",
        "offset_x_cm",
        "offset_y_cm",
        "gain_db",
        "dynamic_range_db",
        "tgc_db",
        "freq_mhz",
        "psf_axial_cm",
        "fps",
        "foreshortening",
    ):
        assert getattr(a, name) != getattr(b, name), name
    assert pa.heart_rate_bpm != pb.heart_rate_bpm and pa.heart == pb.heart == patient.heart
    again, _, _ = acquire(rng_for(0, "clip", 0), CFG, "A", patient, "A4C", variation_rng(CFG, 0, "clip", 0))
    assert again == a  # same keys, same clip


def test_variation_off_draws_the_site_protocol_only():
    off = load_config("tiny", variation="off")
    assert variation_rng(off, 0, "clip") is None
    patient = sample_patient(rng_for(0, "patient"), off.populations["adult"], "p", "adult")
    acq, shown, fps_min = acquire(rng_for(0, "clip"), off, "A", patient, "A4C", None)
    site = sample_acquisition(rng_for(0, "clip"), off.sites["A"], patient.heart.size, 1.0)
    assert acq == site and shown is patient and fps_min == off.sites["A"].fps[0]
    assert (acq.rotation_deg, acq.tgc_db, acq.shadows, acq.foreshortening) == (0.0, (), (), 0.0)


def _traced_video(acq_changes: dict, view: str = "A4C"):
    patient = sample_patient(rng_for(11, "patient"), CFG.populations["adult"], "p", "adult")
    rng = rng_for(11, "clip")
    acq, shown, _ = acquire(rng, CFG, "A", patient, view, variation_rng(CFG, 11, "clip"))
    acq = dataclasses.replace(acq, fps=30.0, **acq_changes)
    geom = full_frame_geometry(96, 96, acq.depth_cm)
    return render_video(shown, view, acq, geom, 20, 0.9, rng, CFG.tissue, CFG.video, keep_maps=True)


@pytest.mark.parametrize(
    "pose",
    [
        {"rotation_deg": 25.0, "angle_deg": 8.0, "foreshortening": 0.1},
        {"rotation_deg": -20.0, "angle_deg": -9.0, "offset_x_cm": 0.8, "depth_cm": 21.0},
        {"rotation_deg": 0.0, "angle_deg": 0.0, "foreshortening": 0.0, "depth_cm": 16.0},
    ],
)
def test_ef_ground_truth_matches_the_traced_volumes_under_rotation_and_scale(pose):
    sv = _traced_video(pose)
    ed, es = sv.ed_frame, sv.es_frame
    rows = {f: sv.disk_tracing(f) for f in (ed, es)}
    vol = sv.state.volume_ml
    # method of disks on the pixel tracings: EF exact, volumes in mL through the pixel size
    assert ef_from_tracings(rows) == pytest.approx(100 * (vol[ed] - vol[es]) / vol[ed], abs=1e-6)
    for f in (ed, es):
        assert volume_from_rows(rows[f]) * sv.geometry.spacing_cm**3 == pytest.approx(vol[f], rel=2e-3)
    # foreshortening shrinks the imaged (traced) LV, never its ejection fraction
    full = vol / (1.0 - sv.acq.foreshortening)
    assert sv.patient.heart.esv_ml <= full.min() + 1e-6 and full.max() <= sv.patient.heart.edv_ml + 1e-6
    # the tracing went through the image's pose: every chord centre lies in the rendered LV cavity
    for f in (ed, es):
        centres = (rows[f][1:, :2] + rows[f][1:, 2:]) / 2
        x = (centres[:, 0] - sv.geometry.apex_col) * sv.geometry.spacing_cm
        y = (centres[:, 1] - sv.geometry.apex_row) * sv.geometry.spacing_cm
        ir = np.floor(np.hypot(x, y) / sv.grid.dr).astype(int)
        it = np.floor((np.arctan2(x, y) + np.deg2rad(sv.grid.sector_deg) / 2) / sv.grid.dtheta).astype(int)
        assert np.all(sv.labels[f, ir, it] == LABELS["LV"])


def test_tgc_and_shadows_change_the_image_where_they_act():
    plain = _traced_video({"tgc_db": (), "shadows": (), "gain_db": 0.0})
    tgc = (0.0,) * 4 + (12.0,) * 4  # far field up 12 dB
    varied = _traced_video({"tgc_db": tgc, "shadows": ((-20.0, 10.0, 30.0),), "gain_db": 0.0})
    r = plain.grid.r
    far, near = r > 0.8 * plain.grid.depth_cm, r < 0.3 * plain.grid.depth_cm
    theta = np.rad2deg(plain.grid.theta)
    band, clear = np.abs(theta + 20.0) < 2.0, theta > 0
    a, b = plain.amplitude, varied.amplitude
    assert b[:, far][..., clear].mean() > 2.0 * a[:, far][..., clear].mean()
    assert b[:, near][..., clear].mean() == pytest.approx(a[:, near][..., clear].mean(), rel=0.05)
    assert b[:, near][..., band].mean() < 0.2 * a[:, near][..., band].mean()


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    out = {}
    for mode in VARIATION_MODES:
        root = tmp_path_factory.mktemp(f"world-{mode}")
        generate(root, load_config("tiny", variation=mode, **SMALL), seed=5, progress=False)
        out[mode] = root
    return out


def test_variation_off_reproduces_the_unvaried_world(worlds, tmp_path):
    """An `off` clip is rendered from its site's draw alone: the same bytes as that recipe."""
    cfg = load_config("tiny", variation="off", **SMALL)
    adults = cfg.populations["adult"]
    patient = sample_patient(rng_for(5, "echonet_dynamic", 0, "patient"), adults, "x", "adult")
    rng = rng_for(5, "echonet_dynamic", 0, "A4C")
    acq = sample_acquisition(rng, cfg.sites["A"], patient.heart.size, cfg.tissue.view_depth["A4C"])
    n, fps, start = sample_timing(rng, cfg.video, acq.fps, cfg.sites["A"].fps[0], patient.heart_rate_bpm)
    acq = dataclasses.replace(acq, fps=float(round(fps)))
    geom = full_frame_geometry(cfg.echonet.height, cfg.echonet.width, acq.depth_cm)
    sv = render_video(patient, "A4C", acq, geom, n, start, rng, cfg.tissue, cfg.video)
    write_video(tmp_path / "clip.avi", sv.frames, sv.fps)
    name = "echonet_dynamic/Videos/SYN_A_000000.avi"
    recipe = (tmp_path / "clip.avi").read_bytes()
    assert (worlds["off"] / name).read_bytes() == recipe
    assert (worlds["realistic"] / name).read_bytes() != recipe
    truth_off = _rows(worlds["off"] / "echonet_dynamic" / "EchoSynthTruth.csv")
    assert "rotation_deg" not in truth_off[0]  # the unvaried world's truth table keeps its columns


def test_switching_the_variation_changes_no_patient_and_no_label(worlds):
    off, real = worlds["off"], worlds["realistic"]
    for name in ("labels.csv", "view_labels.csv", "echo-record-list.csv"):
        rel = Path("mimic_iv_echo") / name
        assert (off / rel).read_bytes() == (real / rel).read_bytes(), rel
    for sub in ("echonet_dynamic", "echonet_dynamic_siteB", "echonet_pediatric/A4C"):
        t_off, t_real = _rows(off / sub / "EchoSynthTruth.csv"), _rows(real / sub / "EchoSynthTruth.csv")
        keys = ("FileName", "ef_nominal", "edv_nominal_ml", "rvsp_mmhg", "age_years", "heart_size")
        assert [[r[k] for k in keys] for r in t_off] == [[r[k] for k in keys] for r in t_real]
        assert [r["depth_cm"] for r in t_off] != [r["depth_cm"] for r in t_real]
    ped = ("FileName", "Sex", "Age", "Weight", "Height", "Split")
    p_off = _rows(off / "echonet_pediatric" / "A4C" / "FileList.csv")
    p_real = _rows(real / "echonet_pediatric" / "A4C" / "FileList.csv")
    assert [[r[k] for k in ped] for r in p_off] == [[r[k] for k in ped] for r in p_real]


def test_the_realistic_world_records_its_variation_and_measures_ef_on_its_tracings(worlds):
    # (EF against the nominal one: test_writers, on the tiny world whose clips hold an ED and an ES)
    root = worlds["realistic"] / "echonet_dynamic"
    truth = {r["FileName"]: r for r in _rows(root / "EchoSynthTruth.csv")}
    tracings = read_volume_tracings(root / "VolumeTracings.csv")
    for r in _rows(root / "FileList.csv"):
        t = truth[r["FileName"]]
        assert {"rotation_deg", "freq_mhz", "foreshortening", "tgc_db", "shadow_db"} <= t.keys()
        assert ef_from_tracings(tracings[f"{r['FileName']}.avi"]) == pytest.approx(float(r["EF"]), abs=1e-3)


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_parses_with_a_known_variation(preset):
    cfg = load_config(preset)
    assert cfg.variation in VARIATION_MODES and cfg.name == preset
    assert set(cfg.realistic) >= {"adult", "pediatric"} and set(VIEWS) <= set(cfg.tissue.view_depth)


def test_the_default_is_realistic_and_demo_off_is_demo_without_it():
    demo, off = load_config("demo"), load_config("demo_off")
    assert demo.variation == "realistic" and off.variation == "off"
    assert dataclasses.replace(off, name="demo", variation="realistic") == demo


def test_a_bare_off_means_off_and_other_values_are_refused(tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("name: bare\nvariation: off\n")  # YAML 1.1 reads this as false
    assert load_config(bare).variation == "off"
    with pytest.raises(ValueError, match="variation must be one of"):
        load_config("tiny", variation="sometimes")
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"base: {loop}\n")
    with pytest.raises(ValueError, match="loops back"):
        load_config(loop)
