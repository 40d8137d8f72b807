import dataclasses

import numpy as np
import pytest

from echojepa.synth.acoustics import full_frame_geometry
from echojepa.synth.anatomy import LABELS, VIEWS
from echojepa.synth.config import load_config
from echojepa.synth.world import render_video, rng_for, sample_acquisition, sample_patient, sample_timing

CFG = load_config("tiny")


def _video(
    view: str, site: str = "A", index: int = 0, frames: int = 16, keep_maps: bool = False, pop="adult"
):
    patient = sample_patient(rng_for(3, "patient", index), CFG.populations[pop], "p", pop)
    rng = rng_for(3, "video", index, view, site)
    acq = sample_acquisition(rng, CFG.sites[site], patient.heart.size, CFG.tissue.view_depth[view])
    acq = dataclasses.replace(acq, fps=30.0)
    geom = full_frame_geometry(64, 64, acq.depth_cm)
    return render_video(
        patient, view, acq, geom, frames, 0.9, rng, CFG.tissue, CFG.video, keep_maps=keep_maps
    )


def test_rng_for_is_stable_and_keyed():
    a = rng_for(0, "echonet", 3).random(3)
    np.testing.assert_array_equal(a, rng_for(0, "echonet", 3).random(3))
    assert not np.array_equal(a, rng_for(1, "echonet", 3).random(3))
    assert not np.array_equal(a, rng_for(0, "echonet", 4).random(3))
    assert not np.array_equal(a, rng_for(0, "pediatric", 3).random(3))


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_renders_a_speckled_sector(view):
    sv = _video(view, frames=3)
    f = sv.frames
    assert f.dtype == np.uint8 and f.shape == (3, 64, 64)
    assert f[:, 0, 0].max() == 0 and f[:, 0, -1].max() == 0  # outside the cone at the top corners
    cone = f[0, 20:60, 24:40].astype(float)
    assert cone.mean() > 20 and cone.std() > 10  # textured, not flat


def test_lv_area_follows_the_volume_curve():
    sv = _video("A4C", frames=24, keep_maps=True)
    w = (sv.grid.r * sv.grid.dr * sv.grid.dtheta)[None, :, None]
    area = ((sv.labels == LABELS["LV"]) * w).sum(axis=(1, 2))
    assert np.corrcoef(area, sv.state.volume_ml)[0, 1] > 0.95
    assert area[sv.ed_frame] > 1.2 * area[sv.es_frame]


def test_lv_blood_pool_echoes_far_less_than_myocardium():
    sv = _video("A4C", frames=24, keep_maps=True)
    # blood is darker than myocardium in the envelope
    amp, lab = sv.amplitude, sv.labels
    assert amp[lab == LABELS["LV"]].mean() < 0.3 * amp[lab == LABELS["LV_wall"]].mean()


def test_timing_covers_the_required_beats():
    rng = rng_for(0, "timing")
    for hr in (50.0, 80.0, 150.0):
        n, fps, start = sample_timing(rng, CFG.video, 60.0, 30.0, hr)
        assert n / fps >= CFG.video.min_cycles * 60.0 / hr - 1e-9
        assert 30.0 <= fps <= 60.0 and CFG.video.frames[0] <= n


def test_site_b_differs_in_pixel_statistics():
    def stats(site):
        vals = [_video("A4C", site=site, index=i, frames=4).frames[:, 16:60, 20:44] for i in range(3)]
        v = np.concatenate([x.ravel() for x in vals]).astype(float)
        return v.mean(), np.histogram(v, bins=16, range=(0, 256), density=True)[0]

    mean_a, hist_a = stats("A")
    mean_b, hist_b = stats("B")
    assert abs(mean_a - mean_b) > 10
    assert 0.5 * np.abs(hist_a - hist_b).sum() * 16 > 0.2  # total-variation distance of grey histograms


def test_pediatric_heart_is_smaller_in_the_image_too():
    adult = _video("A4C", frames=2, keep_maps=True)
    child = _video("A4C", frames=2, keep_maps=True, pop="pediatric")
    assert child.patient.heart.edv_ml < adult.patient.heart.edv_ml
    assert child.acq.depth_cm < adult.acq.depth_cm
