import dataclasses

import numpy as np
import pytest

from echojepa.data.tracings import disk_volume
from echojepa.synth.acoustics import PolarGrid
from echojepa.synth.anatomy import (
    LABELS,
    VIEWS,
    Heart,
    apical_lv_axis_and_chords,
    lv_state,
    psax_eccentricity,
    render_scene,
    volume_curve,
)
from echojepa.synth.config import SynthConfig, load_config
from echojepa.synth.world import rng_for, sample_patient

TISSUE = SynthConfig().tissue


def _heart(**kw) -> Heart:
    base = dict(
        edv_ml=120.0,
        esv_ml=50.0,
        aspect=0.55,
        shortening=0.17,
        wall_cm=0.9,
        rv_scale=1.0,
        rv_wall_cm=0.35,
        flattening=0.0,
        ra_scale=1.0,
        size=1.0,
        systole_frac=0.33,
    )
    base.update(kw)
    return Heart(**base)


def _labels(view: str, heart: Heart, phase=(0.0,), depth: float = 16.0) -> np.ndarray:
    grid = PolarGrid(96, 96, depth, 80.0)
    x, y = grid.view_xy()
    st = lv_state(heart, np.asarray(phase))
    scene = render_scene(view, heart, st, x, y, TISSUE, np.ones_like(x, dtype=np.float32), labels=True)
    return scene.labels


def _area(labels: np.ndarray, name: str, grid_depth: float = 16.0) -> np.ndarray:
    """Area (cm^2) of a label per frame on the 96 x 96 polar grid (sample area r dr dtheta)."""
    grid = PolarGrid(96, 96, grid_depth, 80.0)
    w = (grid.r * grid.dr * grid.dtheta)[None, :, None]
    return ((labels == LABELS[name]) * w).sum(axis=(1, 2))


def test_volume_curve_ejects_over_systole_then_refills():
    ts = 0.33
    ph = np.linspace(0, 0.999, 400)
    v = volume_curve(ph, ts)
    assert v[0] == pytest.approx(1.0)
    assert volume_curve(np.array([ts]), ts)[0] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.diff(v[ph < ts]) <= 1e-12)  # monotone ejection
    assert v[-1] > 0.97 and v.min() >= 0 and v.max() <= 1
    # rapid filling: most of the stroke volume is back early in diastole
    assert volume_curve(np.array([ts + 0.3 * (1 - ts)]), ts)[0] > 0.7


def test_lv_state_hits_edv_and_esv_and_shortens_the_long_axis():
    h = _heart()
    st = lv_state(h, np.array([0.0, h.systole_frac]))
    assert st.volume_ml == pytest.approx([h.edv_ml, h.esv_ml])
    assert st.length[1] / st.length[0] == pytest.approx(1 - h.shortening)
    assert st.wall[1] > st.wall[0]  # the wall thickens in systole


def test_traced_chords_give_the_heart_volume_by_the_method_of_disks():
    h = _heart()
    st = lv_state(h, np.array([0.0, h.systole_frac]))
    for view in ("A4C", "A2C"):
        for k in range(2):
            rows = apical_lv_axis_and_chords(view, h, st, k)
            assert rows.shape == (21, 4)
            assert disk_volume(rows[0], rows[1:]) == pytest.approx(st.volume_ml[k], rel=2e-3)


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_shows_an_lv_blood_pool_inside_bright_myocardium(view):
    lab = _labels(view, _heart())
    assert (lab == LABELS["LV"]).sum() > 100
    assert (lab == LABELS["LV_wall"]).sum() > 50


def test_lv_area_is_larger_at_end_diastole_than_end_systole():
    h = _heart()
    for view in ("A4C", "PSAX", "PLAX"):
        a = _area(_labels(view, h, phase=(0.0, h.systole_frac)), "LV")
        assert a[0] > 1.3 * a[1], view


def test_raised_rvsp_dilates_the_rv_and_flattens_the_septum():
    cfg = SynthConfig()
    pop = dataclasses.replace(
        cfg.populations["adult"],
        tr_velocity_normal=[2.0, 2.0],
        tr_velocity_high=[4.2, 4.2],
        rap_weights=[1.0, 0.0, 0.0],
    )
    normal = sample_patient(
        rng_for(0, "t"), dataclasses.replace(pop, pulmonary_hypertension_fraction=0.0), "n", "adult"
    )
    high = sample_patient(
        rng_for(0, "t"), dataclasses.replace(pop, pulmonary_hypertension_fraction=1.0), "h", "adult"
    )
    assert high.rvsp > 60 > 30 > normal.rvsp
    # same LV, only the RV load differs
    h_norm = dataclasses.replace(
        high.heart,
        rv_scale=normal.heart.rv_scale,
        flattening=normal.heart.flattening,
        rv_wall_cm=normal.heart.rv_wall_cm,
    )
    for view in ("A4C", "PSAX"):
        ratio_n = _area(_labels(view, h_norm), "RV") / _area(_labels(view, h_norm), "LV")
        ratio_h = _area(_labels(view, high.heart), "RV") / _area(_labels(view, high.heart), "LV")
        assert ratio_h[0] > 1.2 * ratio_n[0], view
    st = lv_state(high.heart, np.array([high.heart.systole_frac]))
    assert psax_eccentricity(high.heart, st, 0) > 1.1
    assert psax_eccentricity(h_norm, st, 0) == pytest.approx(1.0)


def test_pediatric_hearts_are_smaller_faster_with_relatively_larger_rv():
    cfg = load_config("tiny")
    adults = [sample_patient(rng_for(1, "a", i), cfg.populations["adult"], "a", "adult") for i in range(40)]
    kids = [
        sample_patient(rng_for(1, "k", i), cfg.populations["pediatric"], "k", "pediatric") for i in range(40)
    ]
    assert np.median([k.heart.edv_ml for k in kids]) < 0.5 * np.median([a.heart.edv_ml for a in adults])
    assert np.median([k.heart_rate_bpm for k in kids]) > np.median([a.heart_rate_bpm for a in adults])
    assert np.median([k.heart.rv_scale for k in kids]) > np.median([a.heart.rv_scale for a in adults])


def test_adult_population_has_a_realistic_spread_of_ef():
    pop = load_config("tiny").populations["adult"]
    ef = np.array([sample_patient(rng_for(2, "p", i), pop, "p", "adult").ef_nominal for i in range(300)])
    assert 50 < np.mean(ef) < 62
    assert (ef < 50).mean() > 0.15 and (ef < 40).mean() > 0.05 and (ef > 60).mean() > 0.25


def test_speckle_material_follows_the_wall_and_leaves_far_tissue_still():
    h = _heart()
    grid = PolarGrid(96, 96, 30.0, 80.0)  # deep enough to hold still tissue beyond the atria
    x, y = grid.view_xy()
    st = lv_state(h, np.array([0.0, h.systole_frac]))
    scene = render_scene("A4C", h, st, x, y, TISSUE, np.ones_like(x, dtype=np.float32))
    mx, my = scene.material_x, scene.material_y
    # at end-diastole every sample is where its tissue is
    np.testing.assert_allclose(mx[0], x, atol=1e-4)
    np.testing.assert_allclose(my[0], y, atol=1e-4)
    # at end-systole LV wall samples come from tissue that sat further out; the far field does not move
    moved = np.hypot(mx[1] - x, my[1] - y)
    lv_mid = (y > 5) & (y < 9) & (np.abs(x - 1.0) < 3.5)
    assert moved[lv_mid].max() > 0.5
    assert moved[y > 2.0 + 2.2 * h.length_ed].max() < 0.05
