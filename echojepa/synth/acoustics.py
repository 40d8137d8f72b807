"""From reflectivity to a B-mode image: speckle, PSF, attenuation, noise, log compression, scan conversion.

All rendering happens on a small polar grid (r, theta) with the transducer at the apex; one
precomputed bilinear map then scan-converts every frame to Cartesian pixels (zero outside the cone).

Speckle model: complex Gaussian scatterers times sqrt(reflectivity), blurred by an anisotropic
Gaussian PSF (short axially; constant in angle, so its lateral width in cm grows with depth),
magnitude = Rayleigh envelope. The scatterers are part fixed in the tissue (sampled at each
sample's end-diastolic "material" position, so speckle moves with the wall) and part an AR(1)
process in time (partial decorrelation between frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import correlate1d


@dataclass(frozen=True)
class Acquisition:
    """Scanner settings of one video (drawn per video from a SiteConfig)."""

    depth_cm: float
    sector_deg: float
    angle_deg: float  # probe rotation about the apex (anatomy -> view)
    offset_x_cm: float
    offset_y_cm: float
    gain_db: float
    dynamic_range_db: float
    noise_db: float
    freq_mhz: float
    attenuation_db_cm_mhz: float
    tgc_residual_db_cm: float
    psf_axial_cm: float
    psf_lateral_deg: float
    speckle_static: float
    speckle_ar: float
    gamma: float
    clutter: float
    fps: float
    white_level_db: float = 6.0  # amplitude (re myocardium) that maps to full white at 0 dB gain
    # Realistic variation (echojepa.synth.variation); the defaults leave the image untouched.
    rotation_deg: float = 0.0  # heart orientation: in-plane turn about the pivot (anatomy frame)
    pivot_x_cm: float = 0.0  # LV centre at end-diastole, anatomy frame
    pivot_y_cm: float = 0.0
    tgc_db: tuple[float, ...] = ()  # TGC slider offsets, evenly spaced from the top to full depth
    shadows: tuple[tuple[float, float, float], ...] = ()  # (centre deg, width deg, loss dB) from the skin
    foreshortening: float = 0.0  # share of the apical LV length the imaging plane misses


@dataclass(frozen=True)
class PolarGrid:
    """Sample centres r_k = (k + 0.5) dr, theta_m = -half + (m + 0.5) dtheta."""

    n_r: int
    n_theta: int
    depth_cm: float
    sector_deg: float

    @property
    def dr(self) -> float:
        return self.depth_cm / self.n_r

    @property
    def dtheta(self) -> float:
        return np.deg2rad(self.sector_deg) / self.n_theta

    @property
    def r(self) -> np.ndarray:
        return (np.arange(self.n_r) + 0.5) * self.dr

    @property
    def theta(self) -> np.ndarray:
        return -np.deg2rad(self.sector_deg) / 2 + (np.arange(self.n_theta) + 0.5) * self.dtheta

    def view_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample positions in the view frame (cm; x right, y depth), each [n_r, n_theta]."""
        r, th = np.meshgrid(self.r, self.theta, indexing="ij")
        return r * np.sin(th), r * np.cos(th)


def view_to_anatomy(x: np.ndarray, y: np.ndarray, acq: Acquisition) -> tuple[np.ndarray, np.ndarray]:
    """Inverse probe pose: view = R(angle) @ (R(rotation) @ (anatomy - pivot) + pivot) + offset."""
    a = np.deg2rad(acq.angle_deg)
    dx, dy = x - acq.offset_x_cm, y - acq.offset_y_cm
    ax, ay = np.cos(a) * dx + np.sin(a) * dy, -np.sin(a) * dx + np.cos(a) * dy
    if acq.rotation_deg:  # skipped when 0 so that the unvaried world keeps its exact bytes
        b = np.deg2rad(acq.rotation_deg)
        qx, qy = ax - acq.pivot_x_cm, ay - acq.pivot_y_cm
        ax = np.cos(b) * qx + np.sin(b) * qy + acq.pivot_x_cm
        ay = -np.sin(b) * qx + np.cos(b) * qy + acq.pivot_y_cm
    return ax, ay


def anatomy_to_view(points: np.ndarray, acq: Acquisition) -> np.ndarray:
    """Points [..., 2] in the anatomy frame -> view frame (cm)."""
    x, y = points[..., 0], points[..., 1]
    if acq.rotation_deg:
        b = np.deg2rad(acq.rotation_deg)
        qx, qy = x - acq.pivot_x_cm, y - acq.pivot_y_cm
        x = np.cos(b) * qx - np.sin(b) * qy + acq.pivot_x_cm
        y = np.sin(b) * qx + np.cos(b) * qy + acq.pivot_y_cm
    a = np.deg2rad(acq.angle_deg)
    return np.stack(
        [np.cos(a) * x - np.sin(a) * y + acq.offset_x_cm, np.sin(a) * x + np.cos(a) * y + acq.offset_y_cm], -1
    )


@dataclass(frozen=True)
class FrameGeometry:
    """Where the cone sits in the output image: apex pixel (col, row) and cm per pixel (square)."""

    height: int
    width: int
    apex_col: float
    apex_row: float
    spacing_cm: float

    def to_pixels(self, view_points: np.ndarray) -> np.ndarray:
        """View-frame cm [..., 2] -> pixel coordinates (x = column, y = row; pixel centres at integers)."""
        return np.stack(
            [
                self.apex_col + view_points[..., 0] / self.spacing_cm,
                self.apex_row + view_points[..., 1] / self.spacing_cm,
            ],
            -1,
        )

    def cone_box(self, grid: PolarGrid) -> tuple[int, int, int, int]:
        """Half-open pixel box (x0, y0, x1, y1) around the cone, clipped to the image."""
        half = np.deg2rad(grid.sector_deg) / 2
        half_w = grid.depth_cm * np.sin(half) / self.spacing_cm
        x0 = max(0, int(np.floor(self.apex_col - half_w)))
        x1 = min(self.width, int(np.ceil(self.apex_col + half_w)) + 1)
        y0 = max(0, int(np.floor(self.apex_row)))
        y1 = min(self.height, int(np.ceil(self.apex_row + grid.depth_cm / self.spacing_cm)) + 1)
        return x0, y0, x1, y1


def full_frame_geometry(height: int, width: int, depth_cm: float) -> FrameGeometry:
    """EchoNet-style framing: apex at the top centre, full depth to the bottom row, sides clipped."""
    return FrameGeometry(height, width, (width - 1) / 2, 0.0, depth_cm / height)


def boxed_geometry(
    height: int, width: int, box: tuple[int, int, int, int], depth_cm: float, sector_deg: float
) -> FrameGeometry:
    """Fit the whole cone inside the pixel box (x0, y0, x1, y1), apex at the top centre of the box."""
    x0, y0, x1, y1 = box
    half = np.deg2rad(sector_deg) / 2
    spacing = max(depth_cm / (y1 - y0 - 1), 2 * depth_cm * np.sin(half) / (x1 - x0 - 1))
    return FrameGeometry(height, width, (x0 + x1 - 1) / 2, float(y0), spacing)


def polar_grid_for(
    geom: FrameGeometry, depth_cm: float, sector_deg: float, r_per_px: float, theta_per_px: float
) -> PolarGrid:
    """A polar grid about as fine as the output pixels (finer would only cost time)."""
    depth_px = depth_cm / geom.spacing_cm
    arc_px = depth_px * np.deg2rad(sector_deg)
    return PolarGrid(
        max(8, round(depth_px * r_per_px)), max(8, round(arc_px * theta_per_px)), depth_cm, sector_deg
    )


class ScanConverter:
    """Bilinear polar -> Cartesian resampling with a precomputed index map."""

    def __init__(self, grid: PolarGrid, geom: FrameGeometry) -> None:
        rows, cols = np.mgrid[0 : geom.height, 0 : geom.width].astype(np.float64)
        x = (cols - geom.apex_col) * geom.spacing_cm
        y = (rows - geom.apex_row) * geom.spacing_cm
        r = np.hypot(x, y)
        th = np.arctan2(x, y)
        half = np.deg2rad(grid.sector_deg) / 2
        self.inside = (r <= grid.depth_cm) & (np.abs(th) <= half) & (y >= 0)  # [H, W]
        fr = np.clip(r / grid.dr - 0.5, 0, grid.n_r - 1)
        ft = np.clip((th + half) / grid.dtheta - 0.5, 0, grid.n_theta - 1)
        r0 = np.minimum(np.floor(fr).astype(np.int64), grid.n_r - 2)
        t0 = np.minimum(np.floor(ft).astype(np.int64), grid.n_theta - 2)
        wr, wt = fr - r0, ft - t0
        sel = self.inside.ravel()
        base = (r0 * grid.n_theta + t0).ravel()[sel]
        self._idx = np.stack([base, base + 1, base + grid.n_theta, base + grid.n_theta + 1])  # [4, Q]
        wr, wt = wr.ravel()[sel], wt.ravel()[sel]
        self._w = np.stack([(1 - wr) * (1 - wt), (1 - wr) * wt, wr * (1 - wt), wr * wt]).astype(np.float32)
        self._sel = np.flatnonzero(sel)
        self.shape = (geom.height, geom.width)

    def __call__(self, polar: np.ndarray) -> np.ndarray:
        """[T, n_r, n_theta] -> [T, H, W] float32, zero outside the cone."""
        t = polar.shape[0]
        flat = polar.reshape(t, -1)
        vals = sum(flat[:, self._idx[k]] * self._w[k] for k in range(4))  # [T, Q]
        out = np.zeros((t, self.shape[0] * self.shape[1]), dtype=np.float32)
        out[:, self._sel] = vals
        return out.reshape(t, *self.shape)


def _gauss_kernel(sigma: float) -> np.ndarray:
    if sigma < 1e-3:
        return np.ones(1, dtype=np.float32)
    radius = max(1, int(3.0 * sigma + 0.5))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def psf_kernels(grid: PolarGrid, acq: Acquisition) -> tuple[np.ndarray, np.ndarray]:
    """Axial and lateral 1D kernels in polar samples, scaled so white noise keeps unit variance."""
    ka = _gauss_kernel(acq.psf_axial_cm / grid.dr)
    kl = _gauss_kernel(np.deg2rad(acq.psf_lateral_deg) / grid.dtheta)
    return ka / np.sqrt((ka**2).sum()), kl / np.sqrt((kl**2).sum())


def scatterers(
    rng: np.random.Generator,
    material_x: np.ndarray,
    material_y: np.ndarray,
    cell_r_cm: float,
    cell_theta_rad: float,
    static: float,
    ar: float,
) -> np.ndarray:
    """Unit-power complex scatterer field (complex64, the shape of material_x, [T, ...]).

    `static` of the power comes from a white field fixed in the tissue: a polar cell grid about the
    transducer (cells cell_r_cm x cell_theta_rad, finer than the render grid so neighbouring samples
    never share a cell) looked up at each sample's material position. The rest is an AR(1) process
    over frames with coefficient `ar`. Still tissue keeps a frame-to-frame correlation of about
    static + (1 - static) * ar.
    """
    r = np.hypot(material_x, material_y)
    th = np.arctan2(material_x, material_y)
    th0 = float(th.min())
    ir = (r * np.float32(1.0 / cell_r_cm)).astype(np.int32)
    it = ((th - th0) * np.float32(1.0 / cell_theta_rad)).astype(np.int32)
    nt = int(it.max()) + 1
    fixed = _complex_normal(rng, (int(ir.max()) + 1) * nt)[ir * nt + it]  # [T, ...]
    fresh = _complex_normal(rng, material_x.size).reshape(material_x.shape)
    a, b = np.float32(ar), np.float32(np.sqrt(1 - ar**2))
    for k in range(1, fresh.shape[0]):
        fresh[k] = a * fresh[k - 1] + b * fresh[k]
    fixed *= np.float32(np.sqrt(static))
    fixed += np.float32(np.sqrt(1 - static)) * fresh
    return fixed


def _complex_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    """n circular complex Gaussian samples with E|z|^2 = 1 (complex64)."""
    return (rng.standard_normal(2 * n, dtype=np.float32) * np.float32(np.sqrt(0.5))).view(np.complex64)


def envelope(
    reflectivity: np.ndarray,
    scat: np.ndarray,
    grid: PolarGrid,
    acq: Acquisition,
    rng: np.random.Generator,
    noise_floor_db: float = -60.0,
) -> np.ndarray:
    """Echo amplitude [T, n_r, n_theta] (before log compression).

    reflectivity [T, n_r, n_theta] (power, myocardium = 1); scat complex [T, n_r, n_theta].
    Receiver noise is drawn only at depths where it is above `noise_floor_db` (invisible below).
    """
    r = grid.r.astype(np.float32)[None, :, None]  # [1, R, 1]
    refl = reflectivity + np.float32(acq.clutter) * np.exp(-r / np.float32(1.5))  # near-field haze
    field = scat * np.sqrt(refl)
    if acq.shadows:  # a rib or lung in the way dims every echo behind it, not the receiver noise
        field *= shadow_profile(grid, acq.shadows)[None, None, :]
    ka, kl = psf_kernels(grid, acq)
    if ka.size > 1:
        field = correlate1d(field, ka, axis=1, mode="reflect")
    if kl.size > 1:
        field = correlate1d(field, kl, axis=2, mode="reflect")
    # TGC undoes the round-trip attenuation except a residual; it also amplifies receiver noise
    field *= (10.0 ** (-acq.tgc_residual_db_cm * r / 20.0)).astype(np.float32)
    tgc_db = 2.0 * acq.attenuation_db_cm_mhz * acq.freq_mhz * (grid.r - grid.depth_cm)
    noise_db = acq.noise_db + tgc_db  # [R]
    rows = np.flatnonzero(noise_db > noise_floor_db)
    if rows.size:
        amp = (10.0 ** (noise_db[rows] / 20.0)).astype(np.float32)[None, :, None]
        sub = field[:, rows[0] :]
        sub += _complex_normal(rng, sub.size).reshape(sub.shape) * amp
    out = np.abs(field)
    if acq.tgc_db:  # the operator's TGC sliders amplify echoes and noise alike
        out *= tgc_profile(grid, acq.tgc_db)[None, :, None]
    return out


def tgc_profile(grid: PolarGrid, sliders_db: tuple[float, ...]) -> np.ndarray:
    """Amplitude gain per depth sample [n_r]: slider offsets (dB) at evenly spaced depths from the top
    to full depth, linearly interpolated, as a console's TGC slide pots."""
    knots = np.linspace(0.0, grid.depth_cm, len(sliders_db))
    return (10.0 ** (np.interp(grid.r, knots, sliders_db) / 20.0)).astype(np.float32)


def shadow_profile(grid: PolarGrid, shadows: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """Amplitude factor per beam angle [n_theta]: each shadow a raised-cosine dip of its loss (dB)
    across its width (degrees), centred at its angle from the sector's centre line."""
    theta = np.rad2deg(grid.theta)
    loss_db = np.zeros_like(theta)
    for centre, width, db in shadows:
        u = np.clip(np.abs(theta - centre) / (width / 2.0), 0.0, 1.0)
        loss_db += db * 0.5 * (1.0 + np.cos(np.pi * u))
    return (10.0 ** (-loss_db / 20.0)).astype(np.float32)


def log_compress(amplitude: np.ndarray, acq: Acquisition) -> np.ndarray:
    """B = clip((20 log10(A / A_ref) + DR) / DR, 0, 1) ** gamma, A_ref set by white level and gain."""
    a_ref = 10.0 ** ((acq.white_level_db - acq.gain_db) / 20.0)
    db = 20.0 * np.log10(np.maximum(amplitude, 1e-12) / a_ref)
    b = np.clip((db + acq.dynamic_range_db) / acq.dynamic_range_db, 0.0, 1.0)
    return (b**acq.gamma).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def doppler_spectrum(
    rng: np.random.Generator,
    peak_velocity_ms: float,
    heart_rate_bpm: float,
    systole_frac: float,
    height: int,
    width: int,
    seconds: float = 3.0,
    scale_ms: float = 5.0,
) -> np.ndarray:
    """A CW Doppler spectral display [height, width] in 0..1: time along x, velocity down from a
    baseline at the top quarter (flow away from the probe, like a tricuspid regurgitant jet)."""
    t = np.arange(width) / width * seconds
    phase = np.mod(t * heart_rate_bpm / 60.0 + float(rng.uniform(0, 1)), 1.0)
    env = (
        np.where(phase < systole_frac, np.clip(np.sin(np.pi * phase / systole_frac), 0, 1) ** 0.7, 0.0)
        * peak_velocity_ms
    )
    base = height // 4
    v = (np.arange(height) - base) / (height - base) * scale_ms  # [H] m/s below the baseline
    inside = (v[:, None] >= 0) & (v[:, None] <= env[None, :])
    level = np.where(inside, 0.35 + 0.5 * (v[:, None] / np.maximum(env[None, :], 1e-6)), 0.0)
    speckle = rng.rayleigh(0.6, size=(height, width))
    img = np.clip(level * speckle + 0.03 * rng.rayleigh(1.0, size=(height, width)), 0.0, 1.0)
    img[base, :] = 0.8  # baseline
    return img.astype(np.float32)
