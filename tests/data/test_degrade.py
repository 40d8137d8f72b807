import math

import pytest
import torch

from echojepa.data.degrade import (
    REGISTRY,
    DepthAttenuation,
    GainChange,
    GaussianShadow,
    Haze,
    Quantisation,
    SpeckleSmoothing,
    available_degradations,
    build_degradation,
    load_degradation,
)

H, W, T = 21, 31, 3
PIXELS = [(0, 15), (10, 0), (20, 30), (7, 22)]  # (row, col)


def flat_video(value: float = 0.8) -> torch.Tensor:
    return torch.full((3, T, H, W), value, dtype=torch.float32)


def ref_radius(row: int, col: int) -> float:
    x, y = col / (W - 1), row / (H - 1)
    return math.sqrt((x - 0.5) ** 2 + y**2)


def half_mask() -> torch.Tensor:
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[:, : W // 2] = True
    return mask


@pytest.mark.parametrize("preset,a", [("depth_low", 0.75), ("depth_med", 1.5), ("depth_high", 2.15)])
def test_depth_attenuation_matches_formula(preset, a):
    deg = load_degradation(preset)
    assert deg == DepthAttenuation(a=a, m=0.0)
    out = deg.apply(flat_video(0.8), None, torch.Generator().manual_seed(0))
    for row, col in PIXELS:
        expected = 0.8 * math.exp(-a * ref_radius(row, col))
        assert out[1, 2, row, col].item() == pytest.approx(expected, rel=1e-6)
    assert out[0, 0, 0, 15].item() == pytest.approx(0.8)  # the apex itself is untouched


def test_depth_attenuation_floor_m():
    out = DepthAttenuation(a=2.0, m=0.25).apply(flat_video(1.0))
    r = ref_radius(20, 30)
    assert out[0, 0, 20, 30].item() == pytest.approx(0.75 * math.exp(-2.0 * r) + 0.25, rel=1e-6)


@pytest.mark.parametrize(
    "preset,s,sigma", [("shadow_low", 0.4, 0.15), ("shadow_med", 0.6, 0.2), ("shadow_high", 0.8, 0.25)]
)
def test_gaussian_shadow_matches_formula(preset, s, sigma):
    deg = load_degradation(preset)
    assert isinstance(deg, GaussianShadow) and deg.s == s and deg.sigma == sigma
    # independent draw of the centre: two uniforms from the same seeded generator
    u = torch.rand(2, generator=torch.Generator().manual_seed(5), dtype=torch.float64).tolist()
    mx, my = (0.2 + 0.6 * u[0]) * W, (0.2 + 0.6 * u[1]) * H
    assert 0.2 * W <= mx <= 0.8 * W and 0.2 * H <= my <= 0.8 * H
    out = deg.apply(flat_video(0.5), None, torch.Generator().manual_seed(5))
    sx, sy = sigma * W, sigma * H
    for row, col in [*PIXELS, (round(my), round(mx))]:
        shade = 1 - s * math.exp(-((col - mx) ** 2 / (2 * sx**2) + (row - my) ** 2 / (2 * sy**2)))
        assert out[2, 1, row, col].item() == pytest.approx(0.5 * shade, rel=1e-6)


def test_shadow_position_reproducible_from_seed_and_varies_with_it():
    deg = GaussianShadow(s=0.8, sigma=0.1)
    a = deg.apply(flat_video(), None, torch.Generator().manual_seed(11))
    b = deg.apply(flat_video(), None, torch.Generator().manual_seed(11))
    c = deg.apply(flat_video(), None, torch.Generator().manual_seed(12))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_shadow_needs_a_generator():
    with pytest.raises(ValueError, match="Generator"):
        GaussianShadow().apply(flat_video(), None, None)


def test_haze_matches_formula():
    deg = load_degradation("haze_med")
    assert isinstance(deg, Haze)
    out = deg.apply(flat_video(0.2))
    for row, col in PIXELS:
        veil = deg.v * math.exp(-(ref_radius(row, col) ** 2) / (2 * deg.width**2))
        assert out[0, 0, row, col].item() == pytest.approx(0.2 + 0.8 * veil, rel=1e-6)


def test_gain_matches_formula_and_clips():
    deg = load_degradation("gain_med")
    assert deg == GainChange(gain_db=-12.0, dynamic_range_db=60.0)
    video = flat_video(0.5)
    video[:, :, 0, 0] = 0.1
    out = deg.apply(video)
    assert out[0, 0, 5, 5].item() == pytest.approx(0.5 - 12.0 / 60.0)
    assert out[0, 0, 0, 0].item() == 0.0


def test_smoothing_keeps_flat_images_flat_and_blurs_an_impulse():
    deg = load_degradation("smoothing_high")
    assert isinstance(deg, SpeckleSmoothing)
    torch.testing.assert_close(deg.apply(flat_video(0.6)), flat_video(0.6))  # normalised convolution
    video = torch.zeros(1, 1, H, W)
    video[0, 0, 10, 15] = 1.0
    out = deg.apply(video)
    k = deg.kernel(W)
    c = k.numel() // 2
    for dr, dc in [(0, 0), (1, 0), (0, 2), (-1, 1)]:
        expected = (k[c + dr] * k[c + dc]).item()
        assert out[0, 0, 10 + dr, 15 + dc].item() == pytest.approx(expected, rel=1e-5)
    sigma = deg.sigma_frac * W
    assert (k[c + 1] / k[c]).item() == pytest.approx(math.exp(-1 / (2 * sigma**2)), rel=1e-9)


def test_quantisation_matches_formula():
    deg = load_degradation("quantisation_high")
    assert deg == Quantisation(levels=8)
    video = torch.tensor([0.0, 0.06, 0.08, 0.5, 1.0]).view(1, 1, 1, 5)
    out = deg.apply(video)
    assert out.flatten().tolist() == pytest.approx([0.0, 0.0, 1 / 7, 4 / 7, 1.0])


@pytest.mark.parametrize("name", [n for n in available_degradations() if n != "none"])
def test_outside_mask_unchanged_and_inside_changed(name):
    deg = load_degradation(name)
    video = torch.rand(3, T, H, W, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    mask = half_mask()
    out = deg.apply(video, mask, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out[..., ~mask], video[..., ~mask], rtol=0, atol=0)
    assert not torch.equal(out[..., mask], video[..., mask])


@pytest.mark.parametrize("name", available_degradations())
def test_every_frame_gets_the_same_change(name):
    frame = torch.rand(3, 1, H, W, generator=torch.Generator().manual_seed(2))
    video = frame.expand(3, T, H, W).clone()
    out = load_degradation(name).apply(video, half_mask(), torch.Generator().manual_seed(3))
    for t in range(1, T):
        torch.testing.assert_close(out[:, t], out[:, 0], rtol=0, atol=0)


def test_none_is_identity():
    video = torch.rand(3, T, H, W)
    torch.testing.assert_close(load_degradation("none").apply(video), video, rtol=0, atol=0)


def test_presets_cover_the_protocol_and_extras():
    names = set(available_degradations())
    assert {f"{k}_{lv}" for k in ("depth", "shadow") for lv in ("low", "med", "high")} <= names
    assert "none" in names and len({load_degradation(n).kind for n in names}) == len(REGISTRY)


def test_build_degradation_errors_are_clear():
    with pytest.raises(ValueError, match="unknown degradation"):
        build_degradation("fog")
    with pytest.raises(ValueError, match="bad parameters"):
        build_degradation("depth_attenuation", alpha=1.0)
    with pytest.raises(ValueError, match="no such degradation preset"):
        load_degradation("depth_extreme")


def test_mask_shape_mismatch_raises():
    with pytest.raises(ValueError, match="mask shape"):
        DepthAttenuation().apply(flat_video(), torch.ones(H + 1, W, dtype=torch.bool))


def test_smoothing_does_not_bleed_the_black_surround_into_the_sector():
    mask = half_mask()
    video = torch.zeros(3, T, H, W)
    video[..., mask] = 0.7  # flat sector, black outside
    out = load_degradation("smoothing_high").apply(video, mask)
    torch.testing.assert_close(out, video)
