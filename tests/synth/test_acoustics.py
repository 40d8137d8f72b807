import dataclasses

import numpy as np
import pytest

from echojepa.synth.acoustics import (
    Acquisition,
    PolarGrid,
    ScanConverter,
    envelope,
    full_frame_geometry,
    log_compress,
    scatterers,
)

ACQ = Acquisition(
    depth_cm=15.0,
    sector_deg=80.0,
    angle_deg=0.0,
    offset_x_cm=0.0,
    offset_y_cm=0.0,
    gain_db=0.0,
    dynamic_range_db=55.0,
    noise_db=-200.0,
    freq_mhz=3.0,
    attenuation_db_cm_mhz=0.5,
    tgc_residual_db_cm=0.0,
    psf_axial_cm=0.06,
    psf_lateral_deg=1.0,
    speckle_static=0.85,
    speckle_ar=0.7,
    gamma=1.0,
    clutter=0.0,
    fps=50.0,
)


def _uniform_envelope(acq: Acquisition, frames: int = 4, seed: int = 0) -> np.ndarray:
    grid = PolarGrid(120, 100, acq.depth_cm, acq.sector_deg)
    rng = np.random.default_rng(seed)
    x, y = grid.view_xy()
    mx = np.broadcast_to(x, (frames, *x.shape)).astype(np.float32)
    my = np.broadcast_to(y, (frames, *y.shape)).astype(np.float32)
    scat = scatterers(rng, mx, my, grid.dr / 2, grid.dtheta / 2, acq.speckle_static, acq.speckle_ar)
    refl = np.ones((frames, grid.n_r, grid.n_theta), dtype=np.float32)
    return envelope(refl, scat, grid, acq, rng)


def test_speckle_envelope_is_rayleigh_in_uniform_tissue():
    a = _uniform_envelope(ACQ)[:, 10:-10, 10:-10]  # away from the filter borders
    snr = a.mean() / a.std()
    assert snr == pytest.approx(1.913, abs=0.05)
    # unit-power scatterers stay unit power through the (normalised) PSF
    assert np.mean(a**2) == pytest.approx(1.0, rel=0.05)


def test_speckle_decorrelates_partly_between_frames_of_still_tissue():
    a = _uniform_envelope(ACQ, frames=6)
    rho = ACQ.speckle_static + (1 - ACQ.speckle_static) * ACQ.speckle_ar  # of the complex field
    c = np.mean([np.corrcoef(a[k].ravel(), a[k + 1].ravel())[0, 1] for k in range(5)])
    assert 0.8 < c < 0.95
    assert c == pytest.approx(rho**2, abs=0.04)  # envelope correlation ~ |rho|^2 for Gaussian speckle


def test_receiver_noise_grows_with_depth():
    noisy = dataclasses.replace(ACQ, noise_db=-10.0)
    grid = PolarGrid(60, 40, noisy.depth_cm, noisy.sector_deg)
    rng = np.random.default_rng(0)
    zero = np.zeros((2, 60, 40), dtype=np.complex64)
    a = envelope(np.zeros((2, 60, 40), np.float32), zero, grid, noisy, rng)
    assert a[:, -5:].mean() > 10 * a[:, :5].mean()


def test_log_compression_maps_the_dynamic_range_to_0_1():
    acq = dataclasses.replace(ACQ, white_level_db=0.0, gain_db=0.0, dynamic_range_db=50.0)
    a = np.array([1.0, 10 ** (-25 / 20), 10 ** (-50 / 20), 1e-6, 10.0])
    np.testing.assert_allclose(log_compress(a, acq), [1.0, 0.5, 0.0, 0.0, 1.0], atol=1e-6)
    brighter = log_compress(a, dataclasses.replace(acq, gain_db=10.0))
    assert brighter[1] > 0.5


def test_scan_conversion_is_zero_outside_the_cone_with_apex_at_top_centre():
    grid = PolarGrid(50, 40, 15.0, 60.0)
    geom = full_frame_geometry(64, 64, 15.0)
    img = ScanConverter(grid, geom)(np.ones((1, 50, 40), np.float32))[0]
    assert img[0, 0] == 0 and img[0, -1] == 0 and img[-1, 0] == 0  # corners outside a 60 deg cone
    assert img[40, 32] == pytest.approx(1.0)  # on the axis
    rows = np.flatnonzero(img.max(1) > 0)
    cols_top = np.flatnonzero(img[2] > 0)
    assert rows[0] <= 1 and abs(cols_top.mean() - 31.5) < 1.0


def test_scan_conversion_keeps_radial_structure():
    grid = PolarGrid(50, 40, 10.0, 60.0)
    geom = full_frame_geometry(64, 64, 10.0)
    polar = np.zeros((1, 50, 40), np.float32)
    polar[0, 25:] = 1.0  # deeper than 5 cm
    img = ScanConverter(grid, geom)(polar)[0]
    assert img[20, 32] == 0 and img[45, 32] == 1.0  # 20 px = 3.1 cm, 45 px = 7.0 cm
