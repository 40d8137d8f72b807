"""Heart geometry and motion per view, in centimetres, as reflectivity maps.

Coordinates: the "anatomy frame" has the transducer at the origin, x to screen right, y = depth
(down). Each view places simple shapes (half-ellipse ventricles, elliptical atria and vessels, line
valves, D-shaped short-axis LV) relative to the LV, whose size follows the LV volume curve:

- LV blood pool (apical / long-axis views) = half of a prolate ellipse with length L and diameter D,
  so its method-of-disks volume is (pi/6) L D^2 exactly (what the written tracings measure).
- The apex stays put and the base descends towards it (long-axis shortening); the diameter follows
  from the volume; the wall thickens so that myocardial cross-section is conserved.
- Raised RV pressure dilates the RV and flattens the septum (a D-shaped LV in PSAX).

Every function works on flattened sample coordinates `x, y` ([P]) for all frames at once ([T, P]).

The module is long because the painted views and the tracings (contours, disk chords) read one shared
layout of frames, radii and septal flattening: kept together, the tracings measure exactly what is painted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from echojepa.synth.config import TissueConfig

VIEWS = ("A4C", "A2C", "A3C", "A5C", "PLAX", "PSAX", "Subcostal")
APICAL_VIEWS = ("A4C", "A2C", "A3C", "A5C")
LABELS = {"tissue": 0, "LV": 1, "RV": 2, "LA": 3, "RA": 4, "AO": 5, "LV_wall": 6, "bright": 7}
N_DISKS = 20

# View templates: LV apex position (cm at heart size 1) and long-axis direction (apex -> base).
_APICAL_LAYOUT = {
    "A4C": {"apex": (0.3, 2.0), "axis": (0.12, 1.0), "rv": True, "aorta": None, "liver": False},
    "A2C": {"apex": (0.3, 2.0), "axis": (0.05, 1.0), "rv": False, "aorta": None, "liver": False},
    "A3C": {"apex": (0.3, 2.0), "axis": (0.1, 1.0), "rv": False, "aorta": "lateral", "liver": False},
    "A5C": {"apex": (0.3, 2.0), "axis": (0.12, 1.0), "rv": True, "aorta": "central", "liver": False},
    "Subcostal": {"apex": (5.0, 12.0), "axis": (-1.0, -0.6), "rv": True, "aorta": None, "liver": True},
}
_PLAX_APEX, _PLAX_AXIS = (-6.0, 7.8), (1.0, -0.1)
_PSAX_CENTRE, _PSAX_SEPTUM = (0.6, 8.0), (-0.45, -0.9)


@dataclass(frozen=True)
class Heart:
    """One patient's heart. Volumes in mL (= cm^3), lengths in cm."""

    edv_ml: float
    esv_ml: float
    aspect: float  # LV diameter / length at end-diastole
    shortening: float  # fractional long-axis shortening at end-systole
    wall_cm: float  # LV wall thickness at end-diastole
    rv_scale: float  # RV width relative to a normal adult RV of this LV
    rv_wall_cm: float
    flattening: float  # septal flattening 0 (round LV) .. ~0.4 (D-shaped)
    ra_scale: float
    size: float  # linear body scale: places the heart in the chest (1 = adult)
    systole_frac: float  # systole share of the cardiac cycle

    @property
    def ef(self) -> float:
        return 100.0 * (self.edv_ml - self.esv_ml) / self.edv_ml

    @property
    def length_ed(self) -> float:
        return float((6.0 * self.edv_ml / (np.pi * self.aspect**2)) ** (1.0 / 3.0))

    @property
    def diameter_ed(self) -> float:
        return self.aspect * self.length_ed


def foreshortened(heart: Heart, share: float) -> Heart:
    """The LV an apical plane shows when it misses the true apex by `share` of the LV length: the
    long axis shorter by that share at every phase, diameters unchanged, so the imaged (and traced)
    volumes shrink by the same share and the ejection fraction is exactly the heart's."""
    if share <= 0.0:
        return heart
    keep = 1.0 - share
    return replace(heart, edv_ml=heart.edv_ml * keep, esv_ml=heart.esv_ml * keep, aspect=heart.aspect / keep)


def lv_centre(view: str, heart: Heart) -> np.ndarray:
    """The LV's centre at end-diastole in the anatomy frame (cm): the pivot of in-plane rotations."""
    if view in _APICAL_LAYOUT:
        apex, e, _ = _apical_frame(view, heart)
        return apex + 0.5 * heart.length_ed * e
    if view == "PLAX":
        return np.asarray(_PLAX_APEX) * heart.size + 0.5 * heart.length_ed * _unit(_PLAX_AXIS)
    if view == "PSAX":
        return np.asarray(_PSAX_CENTRE) * heart.size
    raise ValueError(f"unknown view {view!r}; EchoSynth renders {VIEWS}")


def volume_curve(phase: np.ndarray, systole_frac: float) -> np.ndarray:
    """Normalised LV volume (1 = EDV, 0 = ESV) at cycle phase in [0, 1), phase 0 = end-diastole.

    Raised-cosine ejection over systole, then rapid early filling (~80 % of the stroke volume),
    diastasis and an atrial kick that completes filling just before the next end-diastole.
    """
    ph = np.mod(np.asarray(phase, dtype=np.float64), 1.0)
    ts = systole_frac
    out = np.empty_like(ph)
    sys = ph < ts
    out[sys] = 0.5 * (1.0 + np.cos(np.pi * ph[sys] / ts))
    tau = (ph[~sys] - ts) / (1.0 - ts)  # 0..1 over diastole
    early = 0.8 * (1.0 - np.exp(-tau / 0.1)) / (1.0 - np.exp(-1.0 / 0.1))
    kick = 0.2 * 0.5 * (1.0 - np.cos(np.pi * np.clip((tau - 0.78) / 0.2, 0.0, 1.0)))
    out[~sys] = np.minimum(early + kick, 1.0)
    return out


def _window(ph: np.ndarray, lo: float, hi: float, ramp: float = 0.03) -> np.ndarray:
    return np.clip(np.minimum((ph - lo) / ramp, (hi - ph) / ramp), 0.0, 1.0)


@dataclass
class LVState:
    """Per-frame geometry, each array [T]."""

    phase: np.ndarray
    vnorm: np.ndarray
    volume_ml: np.ndarray
    length: np.ndarray
    diameter: np.ndarray
    wall: np.ndarray
    mitral_open: np.ndarray  # 0 closed .. 1 open
    aortic_open: np.ndarray


def lv_state(heart: Heart, phase: np.ndarray) -> LVState:
    """LV geometry at each frame's cycle phase (apex fixed, base moves, volume from the curve)."""
    ph = np.mod(np.asarray(phase, dtype=np.float64), 1.0)
    v = volume_curve(ph, heart.systole_frac)
    volume = heart.esv_ml + v * (heart.edv_ml - heart.esv_ml)
    length = heart.length_ed * (1.0 - heart.shortening * (1.0 - v))
    diameter = np.sqrt(6.0 * volume / (np.pi * length))
    r_ed = heart.diameter_ed / 2
    wall_area = (r_ed + heart.wall_cm) ** 2 - r_ed**2  # conserved myocardial cross-section
    wall = np.sqrt((diameter / 2) ** 2 + wall_area) - diameter / 2
    ts = heart.systole_frac
    return LVState(
        phase=ph,
        vnorm=v,
        volume_ml=volume,
        length=length,
        diameter=diameter,
        wall=wall,
        mitral_open=_window(ph, ts + 0.05, 0.97),
        aortic_open=_window(ph, 0.03, ts - 0.02),
    )


@dataclass
class Scene:
    """What the probe sees: reflectivity and labels per frame, plus where each sample's tissue sat
    at end-diastole (material coordinates, so speckle can move with the tissue)."""

    reflectivity: np.ndarray  # [T, R, C] float32
    labels: np.ndarray | None  # [T, R, C] uint8 (LABELS), when asked for
    material_x: np.ndarray  # [T, R, C] float32, cm
    material_y: np.ndarray  # [T, R, C] float32, cm


def _unit(v: tuple[float, float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def _normal(e: np.ndarray) -> np.ndarray:
    return np.array([e[1], -e[0]])  # e rotated by -90 deg: screen right for a downward axis


class _Canvas:
    """Painter's algorithm on [T, R, C] sample grids: later shapes cover earlier ones.

    Shapes are evaluated only on the index rectangle of the grid that holds their bounding box
    (over all frames): a `_Patch` holds that rectangle and the local coordinates [T, r, c] in it.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, n_frames: int, base: np.ndarray, labels: bool) -> None:
        self.x = x.astype(np.float32)  # [R, C]
        self.y = y.astype(np.float32)
        self.refl = np.repeat(base.astype(np.float32)[None], n_frames, axis=0)  # [T, R, C]
        self.labels = np.zeros(self.refl.shape, dtype=np.uint8) if labels else None
        self.t = n_frames

    def select(self, points: np.ndarray, extent: float) -> tuple[slice, slice]:
        """Index rectangle holding every sample within `extent` cm (box) of the points [.., 2]."""
        c = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        lo, hi = c.min(0) - extent, c.max(0) + extent
        inside = (self.x >= lo[0]) & (self.x <= hi[0]) & (self.y >= lo[1]) & (self.y <= hi[1])
        rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
        if rows.size == 0:
            return slice(0, 0), slice(0, 0)
        return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)

    def local(self, centre: np.ndarray, e: np.ndarray, extent: float) -> _Patch:
        """Coordinates along e and along its normal relative to per-frame centres [T, 2] (or [2])."""
        c = np.broadcast_to(np.asarray(centre, dtype=np.float64), (self.t, 2)).astype(np.float32)
        sl = self.select(c, extent)
        dx = self.x[sl][None] - c[:, 0, None, None]
        dy = self.y[sl][None] - c[:, 1, None, None]
        ex, ey = np.float32(e[0]), np.float32(e[1])
        return _Patch(sl, dx * ex + dy * ey, dx * ey - dy * ex)

    def paint(self, sl: tuple[slice, slice], mask: np.ndarray, value: float | np.ndarray, label: int) -> None:
        """Set the samples of rectangle `sl` where mask [T, r, c] to value (scalar or a [R, C] map)."""
        vals = np.float32(value) if np.ndim(value) == 0 else np.asarray(value, dtype=np.float32)[sl][None]
        np.copyto(self.refl[(slice(None), *sl)], vals, where=mask)
        if self.labels is not None:
            np.copyto(self.labels[(slice(None), *sl)], np.uint8(label), where=mask)


@dataclass
class _Patch:
    sl: tuple[slice, slice]  # index rectangle of the grid
    u: np.ndarray  # [T, r, c] along the axis
    v: np.ndarray  # [T, r, c] across it


def _col(a: np.ndarray | float, t: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(a, dtype=np.float32).reshape(-1, 1, 1), (t, 1, 1))


def _ellipse(p: _Patch, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    t = p.u.shape[0]
    return (p.u / _col(a, t)) ** 2 + (p.v / _col(b, t)) ** 2 <= 1.0


def _half_ellipse(p: _Patch, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    return _ellipse(p, a, b) & (p.u <= 0)


def _segment(cv: _Canvas, p0: np.ndarray, p1: np.ndarray, half_width: float) -> tuple[tuple, np.ndarray]:
    """(rectangle, mask [T, r, c]) of samples within half_width of the segments p0 -> p1 (each [T, 2])."""
    sl = cv.select(np.concatenate([p0, p1]), half_width)
    d = (p1 - p0).astype(np.float32)[:, :, None, None]  # [T, 2, 1, 1]
    dd = np.maximum(d[:, 0] ** 2 + d[:, 1] ** 2, 1e-9)
    px = cv.x[sl][None] - p0[:, 0, None, None].astype(np.float32)
    py = cv.y[sl][None] - p0[:, 1, None, None].astype(np.float32)
    s = np.clip((px * d[:, 0] + py * d[:, 1]) / dd, 0.0, 1.0)
    return sl, (px - s * d[:, 0]) ** 2 + (py - s * d[:, 1]) ** 2 <= half_width**2


def _rotate(e: np.ndarray, deg: np.ndarray | float) -> np.ndarray:
    a = np.deg2rad(np.asarray(deg, dtype=np.float64))[..., None]
    c, s = np.cos(a), np.sin(a)
    return np.concatenate([c * e[0] - s * e[1], s * e[0] + c * e[1]], axis=-1)  # [..., 2]


def _leaflets(
    cv: _Canvas,
    hinge: np.ndarray,
    closed_dir: np.ndarray,
    open_dir: np.ndarray,
    length: float,
    opening: np.ndarray,
    half_width: float,
) -> tuple[np.ndarray, np.ndarray]:
    """A valve leaflet swinging from its closed to its open direction with `opening` [T]."""
    ang_c = np.arctan2(closed_dir[1], closed_dir[0])
    ang_o = np.arctan2(open_dir[1], open_dir[0])
    dang = np.angle(np.exp(1j * (ang_o - ang_c)))  # shortest way round
    ang = ang_c + opening * dang  # [T]
    tip = hinge + length * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    return _segment(cv, hinge, tip, half_width)


def _material_long_axis(
    x: np.ndarray, y: np.ndarray, apex: np.ndarray, e: np.ndarray, heart: Heart, st: LVState
) -> tuple[np.ndarray, np.ndarray]:
    """Where each sample sat at end-diastole: axial stretch from the fixed apex, area-preserving
    lateral motion, fading out away from the heart (the chest wall and liver do not beat)."""
    f32 = np.float32
    n = _normal(e)
    dx, dy = (x - apex[0]).astype(f32), (y - apex[1]).astype(f32)
    a = (dx * f32(e[0]) + dy * f32(e[1]))[None]  # [1, R, C] along the axis from the apex
    b = (dx * f32(n[0]) + dy * f32(n[1]))[None]
    lt = st.length.astype(f32)[:, None, None]  # [T, 1, 1]
    l_ed = f32(heart.length_ed)
    a_ref = np.where(a <= lt, a * (l_ed / lt), a + (l_ed - lt))
    hw_t = (st.diameter / 2).astype(f32)[:, None, None]
    hw_ed = f32(heart.diameter_ed / 2)
    b_ref = np.where(
        np.abs(b) <= hw_t, b * (hw_ed / hw_t), np.sign(b) * np.sqrt(np.maximum(b**2 - hw_t**2 + hw_ed**2, 0))
    )
    w = np.exp(-((np.hypot(a - f32(0.6) * l_ed, b) / (f32(1.15) * l_ed)) ** 6))  # [1, R, C]
    a2 = a + w * (a_ref - a)  # [T, R, C]
    b2 = b + w * (b_ref - b)
    mx = f32(apex[0]) + a2 * f32(e[0]) + b2 * f32(n[0])
    my = f32(apex[1]) + a2 * f32(e[1]) + b2 * f32(n[1])
    return mx, my


def _material_radial(
    x: np.ndarray, y: np.ndarray, centre: np.ndarray, r_ed: float, r_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Area-preserving radial motion about the short-axis LV centre (the wall thickens inwards)."""
    f32 = np.float32
    dx, dy = (x - centre[0]).astype(f32)[None], (y - centre[1]).astype(f32)[None]
    s = np.maximum(np.hypot(dx, dy), f32(1e-6))
    rt = np.asarray(r_t, dtype=f32)[:, None, None]
    r0 = f32(r_ed)
    s_ref = np.where(s <= rt, s * (r0 / rt), np.sqrt(np.maximum(s**2 - rt**2 + r0**2, 0)))
    w = np.exp(-((s / (f32(3.0) * r0)) ** 4))
    k = 1.0 + w * (s_ref / s - 1.0)
    return f32(centre[0]) + dx * k, f32(centre[1]) + dy * k


def render_scene(
    view: str,
    heart: Heart,
    st: LVState,
    x: np.ndarray,
    y: np.ndarray,
    tissue: TissueConfig,
    texture: np.ndarray,
    labels: bool = False,
) -> Scene:
    """Reflectivity (and labels) of `view` at every frame of `st`, sampled at anatomy-frame points
    x, y [R, C] (a polar grid: shapes are cut out by index rectangles of it).

    `texture` [R, C] multiplies soft-tissue reflectivity (a fixed log-normal pattern per video).
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; EchoSynth renders {VIEWS}")
    base = (tissue.background * texture).astype(np.float32)
    cv = _Canvas(x, y, len(st.phase), base, labels)
    if view in _APICAL_LAYOUT:
        apex, e = _paint_apical(cv, view, heart, st, tissue, texture)
        mx, my = _material_long_axis(x, y, apex, e, heart, st)
    elif view == "PLAX":
        apex, e = _paint_plax(cv, heart, st, tissue, texture)
        mx, my = _material_long_axis(x, y, apex, e, heart, st)
    else:
        centre = _paint_psax(cv, heart, st, tissue, texture)
        mx, my = _material_radial(x, y, centre, _psax_radius(heart.diameter_ed), _psax_radius(st.diameter))
    return Scene(reflectivity=cv.refl, labels=cv.labels, material_x=mx, material_y=my)


def _apical_frame(view: str, heart: Heart) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lay = _APICAL_LAYOUT[view]
    e = _unit(lay["axis"])
    return np.asarray(lay["apex"], dtype=np.float64) * heart.size, e, _normal(e)


def _rv_width(heart: Heart, st: LVState, relative: float) -> np.ndarray:
    """RV width across the septum [T]; the RV empties less than the LV."""
    return relative * heart.rv_scale * heart.diameter_ed * (1.0 - 0.15 * (1.0 - st.vnorm))


def _fmax(a: np.ndarray | float) -> float:
    return float(np.max(a))


def _paint_sac(
    cv: _Canvas,
    centre: np.ndarray,
    e: np.ndarray,
    a: float,
    b: float,
    s: float,
    tissue: TissueConfig,
    texture: np.ndarray,
) -> None:
    """Pericardium: a bright static shell with epicardial fat inside."""
    p = cv.local(centre, e, max(a, b))
    cv.paint(p.sl, _ellipse(p, a, b), tissue.pericardium, LABELS["bright"])
    cv.paint(p.sl, _ellipse(p, a - 0.3 * s, b - 0.3 * s), tissue.fat * texture, LABELS["tissue"])


def _paint_apical(
    cv: _Canvas, view: str, heart: Heart, st: LVState, tissue: TissueConfig, texture: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    lay = _APICAL_LAYOUT[view]
    apex, e, n = _apical_frame(view, heart)
    t = cv.t
    s = heart.size
    L, D, wall = st.length, st.diameter, st.wall
    l_ed, d_ed = heart.length_ed, heart.diameter_ed
    base = apex[None, :] + L[:, None] * e[None, :]  # [T, 2] LV base centre (mitral plane)
    gap = 0.3 * s  # annulus between the LV and the atria
    atrial_grow = 1.0 + 0.15 * (1.0 - st.vnorm)  # atria fill while the ventricles empty
    rv_w = _rv_width(heart, st, 0.8)
    rv_len = min(0.78 * l_ed * (0.85 + 0.15 * heart.rv_scale), l_ed) * (1.0 - 0.1 * (1 - st.vnorm))
    rv_base = base - n[None, :] * (D / 2 + wall + rv_w / 2)[:, None]
    la_h, la_w = 0.5 * l_ed * atrial_grow, 0.85 * d_ed * atrial_grow
    la_c = base + e[None, :] * (gap + la_h / 2)[:, None]
    if not lay["rv"]:
        la_c = la_c - n[None, :] * 0.1 * d_ed
    ra_h = 0.45 * l_ed * heart.ra_scale * atrial_grow
    ra_w = 0.8 * d_ed * heart.ra_scale * atrial_grow
    ra_c = rv_base + e[None, :] * (gap + ra_h / 2)[:, None]
    aw, rvw = 0.25 * s, heart.rv_wall_cm  # atrial and RV wall thickness

    if lay["liver"]:
        p = cv.local(np.array([1.0, 2.0]) * s, np.array([1.0, 0.0]), 9.0 * s)
        cv.paint(p.sl, _ellipse(p, 9.0 * s, 5.5 * s), tissue.liver * texture, LABELS["tissue"])
        p = cv.local(np.array([-1.5, 4.0]) * s, _unit((1.0, 0.3)), 1.2 * s)
        cv.paint(p.sl, _ellipse(p, 1.2 * s, 0.7 * s), tissue.blood, LABELS["tissue"])  # hepatic vein

    extent = 1.5 * l_ed + gap
    rv_extra = 0.8 * heart.rv_scale * d_ed + rvw if lay["rv"] else 0.0
    sac_c = apex + e * (extent / 2 - 0.3 * s) - n * (rv_extra / 2)
    _paint_sac(
        cv,
        sac_c,
        e,
        extent / 2 + 0.7 * s,
        d_ed / 2 + heart.wall_cm + rv_extra / 2 + 0.6 * s,
        s,
        tissue,
        texture,
    )

    p_la = cv.local(la_c, e, _fmax(la_w) / 2 + aw + _fmax(la_h) / 2)
    cv.paint(p_la.sl, _ellipse(p_la, la_h / 2 + aw, la_w / 2 + aw), tissue.atrial_wall, LABELS["bright"])
    if lay["rv"]:
        p_ra = cv.local(ra_c, e, _fmax(ra_w) / 2 + aw + _fmax(ra_h) / 2)
        cv.paint(p_ra.sl, _ellipse(p_ra, ra_h / 2 + aw, ra_w / 2 + aw), tissue.atrial_wall, LABELS["bright"])
        p_rv = cv.local(rv_base, e, _fmax(rv_len) + rvw + _fmax(rv_w))
        cv.paint(
            p_rv.sl, _half_ellipse(p_rv, rv_len + rvw, rv_w / 2 + rvw), tissue.myocardium, LABELS["bright"]
        )
    p_lv = cv.local(base, e, _fmax(L) + _fmax(D) + _fmax(wall))
    cv.paint(p_lv.sl, _half_ellipse(p_lv, L + 0.8 * wall, D / 2 + wall), tissue.myocardium, LABELS["LV_wall"])
    annulus = (p_lv.u >= 0) & (p_lv.u <= gap) & (np.abs(p_lv.v) <= _col(D / 2 + wall, t))
    cv.paint(p_lv.sl, annulus, tissue.atrial_wall, LABELS["bright"])

    p_ao = None
    if lay["aorta"] is not None:
        if lay["aorta"] == "central":
            ao_c = base + e[None, :] * (1.5 * s) - n[None, :] * 0.1 * d_ed
            ao_e, ao_a, ao_b = e, 2.0 * s, 0.55 * s
        else:
            ao_c = base + e[None, :] * (1.6 * s) + n[None, :] * 0.45 * d_ed
            ao_e, ao_a, ao_b = _unit((e[0] + 0.6 * n[0], e[1] + 0.6 * n[1])), 2.2 * s, 0.6 * s
        p_ao = cv.local(ao_c, ao_e, ao_a + 0.3 * s)
        cv.paint(
            p_ao.sl, _ellipse(p_ao, ao_a + 0.2 * s, ao_b + 0.2 * s), tissue.atrial_wall, LABELS["bright"]
        )

    cv.paint(p_la.sl, _ellipse(p_la, la_h / 2, la_w / 2), tissue.blood, LABELS["LA"])
    if lay["rv"]:
        cv.paint(p_ra.sl, _ellipse(p_ra, ra_h / 2, ra_w / 2), tissue.blood, LABELS["RA"])
        cv.paint(p_rv.sl, _half_ellipse(p_rv, rv_len, rv_w / 2), tissue.blood, LABELS["RV"])
    if p_ao is not None:
        cv.paint(p_ao.sl, _ellipse(p_ao, ao_a, ao_b), tissue.blood, LABELS["AO"])
    cv.paint(p_lv.sl, _half_ellipse(p_lv, L, D / 2), tissue.blood, LABELS["LV"])

    # mitral (and tricuspid) leaflets: closed across the annulus in systole, open towards the apex
    hw = 0.09 * s
    for side in (1.0, -1.0):
        closed = -side * n + 0.25 * -e
        opened = -e - side * 0.15 * n
        hinge = base + side * n[None, :] * (0.42 * D)[:, None]
        cv.paint(
            *_leaflets(cv, hinge, closed, opened, 0.4 * d_ed, st.mitral_open, hw),
            tissue.valve,
            LABELS["bright"],
        )
        if lay["rv"]:
            hinge_rv = rv_base + side * n[None, :] * (0.4 * rv_w)[:, None]
            cv.paint(
                *_leaflets(cv, hinge_rv, closed, opened, 0.35 * d_ed, st.mitral_open, hw),
                tissue.valve,
                LABELS["bright"],
            )
    return apex, e


def _paint_plax(
    cv: _Canvas, heart: Heart, st: LVState, tissue: TissueConfig, texture: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    s = heart.size
    e = _unit(_PLAX_AXIS)
    n = _normal(e)  # points up (anterior): septum and RV side
    apex = np.asarray(_PLAX_APEX) * s
    L, D, wall = st.length, st.diameter, st.wall
    l_ed, d_ed = heart.length_ed, heart.diameter_ed
    base = apex[None, :] + L[:, None] * e[None, :]
    rv_w = _rv_width(heart, st, 0.55)
    rv_c = apex[None, :] + e[None, :] * (0.6 * l_ed) + n[None, :] * (D / 2 + wall + rv_w / 2)[:, None]
    ao_c = base + e[None, :] * (2.0 * s) + n[None, :] * (0.3 * d_ed)
    ao_a, ao_b = 2.2 * s, 1.3 * s
    la_r = 1.9 * s * (1.0 + 0.12 * (1.0 - st.vnorm))
    la_c = base + e[None, :] * (la_r + 0.4 * s)[:, None] - n[None, :] * (0.4 * d_ed)
    rvw, aw = heart.rv_wall_cm, 0.25 * s

    sac_a = 0.55 * (l_ed + 4 * s)
    _paint_sac(
        cv,
        apex + e * sac_a - n * 0.4 * s,
        e,
        sac_a + 0.8 * s,
        d_ed / 2 + heart.wall_cm + 1.0 * s,
        s,
        tissue,
        texture,
    )
    p_rv = cv.local(rv_c, e, 0.45 * l_ed + rvw)
    cv.paint(p_rv.sl, _ellipse(p_rv, 0.45 * l_ed + rvw, rv_w / 2 + rvw), tissue.myocardium, LABELS["bright"])
    cv.paint(p_rv.sl, _ellipse(p_rv, 0.45 * l_ed, rv_w / 2), tissue.blood, LABELS["RV"])
    p_ao = cv.local(ao_c, e, ao_a + aw)
    cv.paint(p_ao.sl, _ellipse(p_ao, ao_a + aw, ao_b + aw), tissue.atrial_wall, LABELS["bright"])
    p_la = cv.local(la_c, e, _fmax(la_r) + aw)
    cv.paint(p_la.sl, _ellipse(p_la, la_r + aw, la_r + aw), tissue.atrial_wall, LABELS["bright"])
    p_lv = cv.local(base, e, _fmax(L) + _fmax(D) + _fmax(wall))
    cv.paint(p_lv.sl, _half_ellipse(p_lv, L + 0.8 * wall, D / 2 + wall), tissue.myocardium, LABELS["LV_wall"])
    cv.paint(p_ao.sl, _ellipse(p_ao, ao_a, ao_b), tissue.blood, LABELS["AO"])
    cv.paint(p_la.sl, _ellipse(p_la, la_r, la_r), tissue.blood, LABELS["LA"])
    cv.paint(p_lv.sl, _half_ellipse(p_lv, L, D / 2), tissue.blood, LABELS["LV"])
    lvot = (p_lv.u >= -1.0 * s) & (p_lv.u <= 0.6 * s) & (p_lv.v >= 0.0) & (p_lv.v <= _col(0.45 * D, cv.t))
    cv.paint(p_lv.sl, lvot, tissue.blood, LABELS["LV"])  # LV outflow into the aortic root

    hw = 0.09 * s
    hinge_a = base + n[None, :] * (0.05 * D)[:, None]
    hinge_p = base - n[None, :] * (0.45 * D)[:, None]
    for hinge, side in ((hinge_a, -1.0), (hinge_p, 1.0)):
        leaf = _leaflets(cv, hinge, side * n - 0.1 * e, -e + side * 0.1 * n, 0.4 * d_ed, st.mitral_open, hw)
        cv.paint(*leaf, tissue.valve, LABELS["bright"])
    av_root = ao_c - e[None, :] * (ao_a - 0.5 * s)
    for side in (1.0, -1.0):
        hinge = av_root + side * n[None, :] * (ao_b - 0.05 * s)
        leaf = _leaflets(cv, hinge, -side * n, e + side * 0.2 * n, 0.9 * ao_b, st.aortic_open, hw)
        cv.paint(*leaf, tissue.valve, LABELS["bright"])
    return apex, e


def _psax_radius(diameter: np.ndarray | float) -> np.ndarray | float:
    return 0.47 * diameter  # mid-papillary cross-section of the prolate LV


def _psax_flattening(heart: Heart, st: LVState) -> np.ndarray:
    """Pressure overload flattens the septum most at end-systole."""
    return heart.flattening * (0.6 + 0.4 * (1.0 - st.vnorm))


def _paint_psax(
    cv: _Canvas, heart: Heart, st: LVState, tissue: TissueConfig, texture: np.ndarray
) -> np.ndarray:
    s = heart.size
    centre = np.asarray(_PSAX_CENTRE) * s
    ds = _unit(_PSAX_SEPTUM)  # towards the RV
    perp = _normal(ds)
    r = _psax_radius(st.diameter)
    r_ed = _psax_radius(heart.diameter_ed)
    wall_area = (r_ed + heart.wall_cm) ** 2 - r_ed**2
    wall = np.sqrt(r**2 + wall_area) - r
    f = _psax_flattening(heart, st)
    cut = r * (1.0 - f)
    rv_w = 0.7 * r_ed * heart.rv_scale * (1.0 - 0.2 * (1.0 - st.vnorm))
    rv_len = 1.25 * (r_ed + heart.wall_cm) * (0.85 + 0.15 * heart.rv_scale)
    rv_c = centre[None, :] + ds[None, :] * (cut + wall + 0.45 * rv_w)[:, None]
    rvw = heart.rv_wall_cm
    t = cv.t

    a_sac = rv_len + 0.9 * s
    b_sac = r_ed + heart.wall_cm + 0.8 * r_ed * heart.rv_scale + 0.9 * s
    _paint_sac(cv, centre + ds * 0.7 * r_ed, perp, a_sac, b_sac, s, tissue, texture)
    p_rv = cv.local(rv_c, perp, rv_len + rvw)
    cv.paint(p_rv.sl, _ellipse(p_rv, rv_len + rvw, rv_w / 2 + rvw), tissue.myocardium, LABELS["bright"])
    cv.paint(p_rv.sl, _ellipse(p_rv, rv_len, rv_w / 2), tissue.blood, LABELS["RV"])

    p = cv.local(centre, ds, _fmax(r + wall))  # u: towards the septum
    rho2 = p.u**2 + p.v**2
    epi = (rho2 <= _col((r + wall) ** 2, t)) & (p.u <= _col(cut + wall, t))
    cv.paint(p.sl, epi, tissue.myocardium, LABELS["LV_wall"])
    cv.paint(p.sl, (rho2 <= _col(r**2, t)) & (p.u <= _col(cut, t)), tissue.blood, LABELS["LV"])
    for ang in (125.0, -125.0):  # papillary muscles, away from the septum
        pm = cv.local(centre + 0.68 * r_ed * _rotate(ds, ang), ds, 0.25 * _fmax(r))
        cv.paint(pm.sl, pm.u**2 + pm.v**2 <= _col((0.22 * r) ** 2, t), tissue.myocardium, LABELS["LV_wall"])
    return centre


# --------------------------------------------------------------------------- tracings (anatomy cm)


def apical_lv_axis_and_chords(
    view: str, heart: Heart, st: LVState, frame: int, n: int = N_DISKS
) -> np.ndarray:
    """EchoNet-style tracing of one frame: [1 + n, 4] rows (x1, y1, x2, y2), cm.

    Row 0 is the LV long axis (apex -> mitral-plane centre); rows 1.. are the method-of-disks chords
    perpendicular to it, at disk mid-points from apex to base.
    """
    if view not in APICAL_VIEWS:
        raise ValueError(f"method-of-disks tracings are drawn on apical views {APICAL_VIEWS}, not {view!r}")
    apex, e, nrm = _apical_frame(view, heart)
    length, diameter = float(st.length[frame]), float(st.diameter[frame])
    base = apex + length * e
    s = (np.arange(n) + 0.5) / n  # from apex (0) to base (1)
    half = diameter / 2 * np.sqrt(s * (2.0 - s))  # half-ellipse half-width at s
    centres = apex[None, :] + (s * length)[:, None] * e[None, :]
    p1 = centres + half[:, None] * nrm[None, :]
    p2 = centres - half[:, None] * nrm[None, :]
    rows = np.concatenate([np.concatenate([apex, base])[None, :], np.concatenate([p1, p2], axis=1)])
    return rows


def apical_lv_contour(view: str, heart: Heart, st: LVState, frame: int, n: int = 41) -> np.ndarray:
    """Endocardial LV contour [n, 2] (cm) from one mitral hinge round the apex to the other."""
    if view not in APICAL_VIEWS:
        raise ValueError(f"apical LV contours are drawn on {APICAL_VIEWS}, not {view!r}")
    apex, e, nrm = _apical_frame(view, heart)
    length, diameter = float(st.length[frame]), float(st.diameter[frame])
    base = apex + length * e
    ang = np.linspace(-np.pi / 2, np.pi / 2, n)  # half-ellipse about the base centre
    along = -length * np.cos(ang)
    across = diameter / 2 * np.sin(ang)
    return base[None, :] + along[:, None] * e[None, :] + across[:, None] * nrm[None, :]


def psax_lv_contour(heart: Heart, st: LVState, frame: int, n: int = 36) -> np.ndarray:
    """Inner (endocardial) contour of the PSAX LV ring [n, 2] (cm), D-shaped when flattened."""
    centre = np.asarray(_PSAX_CENTRE) * heart.size
    ds = _unit(_PSAX_SEPTUM)
    r = float(_psax_radius(st.diameter[frame]))
    f = float(_psax_flattening(heart, st)[frame])
    phi = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    d = _rotate(ds, np.rad2deg(phi))  # [n, 2] directions, phi measured from the septal direction
    cosang = np.cos(phi)
    rad = np.where(cosang > 1e-6, np.minimum(r, r * (1.0 - f) / np.maximum(cosang, 1e-6)), r)
    return centre[None, :] + rad[:, None] * d


def psax_eccentricity(heart: Heart, st: LVState, frame: int) -> float:
    """LV eccentricity index: diameter parallel to the septum / diameter perpendicular to it."""
    r = float(_psax_radius(st.diameter[frame]))
    f = float(_psax_flattening(heart, st)[frame])
    return 2 * r / (r + r * (1.0 - f))
