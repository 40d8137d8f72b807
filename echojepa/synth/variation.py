"""Per-video acquisition variation (`variation: realistic`): how real echo clips differ.

`world.sample_acquisition` draws a site's fixed protocol (its scanner and preset). In a real lab the
operator and the patient change much more from clip to clip; `vary` redraws those settings from
`realistic.<population>` in conf/synth/world.yaml, where every range names its source:

- sector depth and width; probe aim (a turn about the transducer); heart orientation (an in-plane
  turn about the LV centre); heart position (sideways, and deeper behind a thicker chest wall). Drawn
  again until the traced LV (apical views, PSAX) lies inside the sector and the frame, since an
  operator frames the ventricle before recording;
- overall gain, dynamic range and TGC sliders, as dB added to the site's;
- transducer frequency: a share of the highest frequency that still reaches the depth. Speckle size
  (the PSF) scales with 1/f from the site's frequency, far-field noise with the extra round-trip
  attenuation that TGC makes up for;
- frame rate, lower for deeper and wider sectors; the clip's heart rate about the patient's;
- apical foreshortening; rib / lung shadows.

The draws come from a Generator of their own, so the variation leaves patients and labels alone, and
ground truth stays exact: tracings go through the same pose as the image (`anatomy_to_view`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from echojepa.synth.acoustics import Acquisition, anatomy_to_view
from echojepa.synth.anatomy import (
    APICAL_VIEWS,
    Heart,
    apical_lv_contour,
    foreshortened,
    lv_centre,
    lv_state,
    psax_lv_contour,
)
from echojepa.synth.config import VariationConfig

FITTED_VIEWS = (*APICAL_VIEWS, "PSAX")  # the views whose LV is traced (EF, pediatric contours)


@dataclass(frozen=True)
class Varied:
    acq: Acquisition
    heart_rate_bpm: float  # this clip's
    fps_min: float  # the lowest frame rate a short clip may be slowed to (to hold its beats)
    fitted: bool  # False: no draw framed the LV, the site's geometry was kept


def _u(rng: np.random.Generator, lo_hi: list[float]) -> float:
    lo, hi = lo_hi
    return float(lo) if hi == lo else float(rng.uniform(lo, hi))


def shown_heart(heart: Heart, view: str, acq: Acquisition) -> Heart:
    """The heart as the clip images it (apical views: foreshortened by acq.foreshortening)."""
    return foreshortened(heart, acq.foreshortening) if view in APICAL_VIEWS else heart


def lv_inside(acq: Acquisition, heart: Heart, view: str, margin_cm: float) -> bool:
    """Whether the end-diastolic LV cavity lies `margin_cm` inside the sector's edges, above its depth
    and within a square frame of the full depth (EchoNet framing crops the cone's sides at
    +-depth / 2). Views without a traced LV always pass."""
    if view not in FITTED_VIEWS:
        return True
    st = lv_state(heart, np.zeros(1))
    pts = psax_lv_contour(heart, st, 0) if view == "PSAX" else apical_lv_contour(view, heart, st, 0)
    v = anatomy_to_view(pts, acq)
    x, y = v[:, 0], v[:, 1]
    m = margin_cm
    half = np.deg2rad(acq.sector_deg) / 2
    return bool(
        np.all(np.hypot(x, y) + m <= acq.depth_cm)
        and np.all(np.abs(x) * np.cos(half) - y * np.sin(half) <= -m)  # distance to either edge >= m
        and np.all(np.abs(x) + m <= acq.depth_cm / 2)
    )


def _geometry(
    rng: np.random.Generator, var: VariationConfig, heart: Heart, view: str, view_depth: float
) -> dict[str, float]:
    s = heart.size
    pivot = lv_centre(view, heart)
    return {
        "depth_cm": _u(rng, var.depth_per_size_cm) * s * view_depth,
        "sector_deg": _u(rng, var.sector_deg),
        "angle_deg": _u(rng, var.angle_deg),
        "rotation_deg": _u(rng, var.rotation_deg),
        "offset_x_cm": _u(rng, var.offset_x_cm) * s,
        "offset_y_cm": _u(rng, var.offset_y_cm) * s,
        "pivot_x_cm": float(pivot[0]),
        "pivot_y_cm": float(pivot[1]),
    }


def vary(
    rng: np.random.Generator,
    site_acq: Acquisition,
    var: VariationConfig,
    heart: Heart,
    heart_rate_bpm: float,
    view: str,
    view_depth: float,
) -> Varied:
    """The clip's acquisition: `site_acq` (the site's draw) with the operator's and the patient's
    settings redrawn from `var` (see the module docstring)."""
    fore = _u(rng, var.foreshortening) if view in APICAL_VIEWS else 0.0
    acq = replace(site_acq, foreshortening=fore)
    shown = shown_heart(heart, view, acq)
    fitted = False
    for _ in range(var.fit_tries):
        candidate = replace(acq, **_geometry(rng, var, shown, view, view_depth))
        if lv_inside(candidate, shown, view, var.fit_margin_cm):
            acq, fitted = candidate, True
            break
    depth, sector = acq.depth_cm, acq.sector_deg
    # the operator picks a frequency near the highest one that still reaches the depth
    f_top = min(var.freq_mhz[1], var.penetration_cm_mhz / depth)
    freq = float(np.clip(f_top * _u(rng, var.freq_choice), var.freq_mhz[0], var.freq_mhz[1]))
    finer = site_acq.freq_mhz / freq  # the site's PSF ranges hold at the site's frequency
    # the site's noise floor holds at the typical share of the penetration depth; TGC makes up for
    # any extra round-trip attenuation and lifts the receiver noise with it
    typical = float(np.mean(var.freq_choice)) * var.penetration_cm_mhz
    extra_loss_db = 2.0 * site_acq.attenuation_db_cm_mhz * (freq * depth - typical)
    ref = var.fps_reference
    fps = _u(rng, var.fps) * (ref.depth_cm * ref.sector_deg) / (depth * sector)  # lines x depth per frame
    hr = heart_rate_bpm * (1.0 + var.heart_rate_jitter * float(np.clip(rng.standard_normal(), -2.0, 2.0)))
    gain = site_acq.gain_db + _u(rng, var.gain_db)
    dyn = site_acq.dynamic_range_db + _u(rng, var.dynamic_range_db)
    tgc = tuple(_u(rng, var.tgc_db) for _ in range(var.tgc_sliders))
    shadows: tuple[tuple[float, float, float], ...] = ()
    if rng.random() < var.shadow_prob:
        centre = _u(rng, [-0.5 * sector, 0.5 * sector])
        shadows = ((centre, _u(rng, var.shadow_width_deg), _u(rng, var.shadow_db)),)
    acq = replace(
        acq,
        freq_mhz=freq,
        psf_axial_cm=site_acq.psf_axial_cm * finer,
        psf_lateral_deg=site_acq.psf_lateral_deg * finer,
        noise_db=site_acq.noise_db + extra_loss_db,
        fps=float(np.clip(fps, var.fps[0], var.fps[1])),
        gain_db=gain,
        dynamic_range_db=dyn,
        tgc_db=tgc,
        shadows=shadows,
    )
    return Varied(acq=acq, heart_rate_bpm=float(hr), fps_min=float(var.fps[0]), fitted=fitted)
