"""Patients, acquisitions and rendered videos: the latent truth of the synthetic echo world.

Randomness: every patient and every video draws from its own numpy Generator seeded by
(seed, dataset, index[, view]) through `rng_for`, never from global state, so a dataset is
byte-identical for a seed whatever order or subset is generated. A video's acquisition variation
(`variation: realistic`, echojepa.synth.variation) draws from a second Generator of its own, so
turning it off gives back exactly the world drawn from each site's fixed protocol.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

from echojepa.synth.acoustics import (
    Acquisition,
    FrameGeometry,
    PolarGrid,
    ScanConverter,
    anatomy_to_view,
    envelope,
    log_compress,
    polar_grid_for,
    scatterers,
    to_uint8,
    view_to_anatomy,
)
from echojepa.synth.anatomy import (
    N_DISKS,
    Heart,
    LVState,
    apical_lv_axis_and_chords,
    apical_lv_contour,
    lv_state,
    psax_lv_contour,
    render_scene,
)
from echojepa.synth.config import PopulationConfig, SiteConfig, SynthConfig, TissueConfig, VideoConfig
from echojepa.synth.variation import shown_heart, vary


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """A Generator for (seed, keys...): strings are hashed stably (crc32), not with Python's hash()."""
    words = [int(seed) & 0xFFFFFFFF]
    for k in keys:
        words.append(zlib.crc32(k.encode()) if isinstance(k, str) else int(k) & 0xFFFFFFFF)
    return np.random.default_rng(np.random.SeedSequence(words))


def _u(rng: np.random.Generator, lo_hi: list[float]) -> float:
    lo, hi = lo_hi
    return float(lo) if hi == lo else float(rng.uniform(lo, hi))


@dataclass(frozen=True)
class Patient:
    pid: str
    population: str  # "adult" | "pediatric"
    sex: str  # "M" | "F"
    age_years: float
    weight_kg: float
    height_cm: float
    heart_rate_bpm: float
    tr_velocity_ms: float
    rap_mmhg: float
    heart: Heart

    @property
    def rvsp(self) -> float:
        return 4.0 * self.tr_velocity_ms**2 + self.rap_mmhg

    @property
    def ef_nominal(self) -> float:
        return self.heart.ef


def sample_patient(rng: np.random.Generator, pop: PopulationConfig, pid: str, population: str) -> Patient:
    sex = "F" if rng.random() < pop.female_fraction else "M"
    age = _u(rng, pop.age_years)
    lo, hi = pop.size
    if population == "pediatric":
        growth = (age - pop.age_years[0]) / max(pop.age_years[1] - pop.age_years[0], 1e-6)
        size = lo + (hi - lo) * growth**0.7 * float(rng.uniform(0.93, 1.07))
        height = 50.0 + 125.0 * (age / 18.0) ** 0.6 * float(rng.uniform(0.94, 1.06))
        weight = 3.5 + 62.0 * (age / 18.0) ** 1.4 * float(rng.uniform(0.85, 1.2))
        hr_lo, hr_hi = pop.heart_rate_bpm
        hr = float(np.clip(hr_hi - (hr_hi - hr_lo) * growth + rng.normal(0, 8), hr_lo, hr_hi))
    else:
        size = _u(rng, pop.size)
        height = float(rng.normal(176.0 if sex == "M" else 163.0, 7.0))
        weight = float(np.clip(rng.normal(27.0, 4.5), 17, 45)) * (height / 100) ** 2
        hr = _u(rng, pop.heart_rate_bpm)
    w = np.asarray(pop.ef_bin_weights, dtype=np.float64)
    ef = _u(rng, pop.ef_bins[int(rng.choice(len(w), p=w / w.sum()))])
    vol_scale = size**3
    edv = float(rng.normal(pop.edv_ml_mean, pop.edv_ml_sd)) * (
        1.0 + pop.dilation_per_ef_point * max(0.0, 55.0 - ef)
    )
    edv = float(np.clip(edv, pop.edv_ml_clip[0], pop.edv_ml_clip[1])) * vol_scale
    esv = edv * (1.0 - ef / 100.0)
    high = rng.random() < pop.pulmonary_hypertension_fraction
    tr_v = _u(rng, pop.tr_velocity_high if high else pop.tr_velocity_normal)
    rw = np.asarray(pop.rap_weights, dtype=np.float64)
    rap = float(pop.rap_choices[int(rng.choice(len(rw), p=rw / rw.sum()))])
    rvsp = 4.0 * tr_v**2 + rap
    excess = max(0.0, rvsp - 30.0)
    heart = Heart(
        edv_ml=edv,
        esv_ml=esv,
        aspect=_u(rng, pop.aspect),
        shortening=_u(rng, pop.shortening) * float(np.clip(ef / 60.0, 0.3, 1.15)),
        wall_cm=_u(rng, pop.wall_cm) * size,
        rv_scale=pop.rv_relative * (1.0 + pop.rv_dilation_per_mmhg * excess) * float(rng.uniform(0.92, 1.08)),
        rv_wall_cm=0.35 * size * (1.0 + 0.01 * excess),
        flattening=min(pop.flattening_max, pop.flattening_per_mmhg * max(0.0, rvsp - 35.0)),
        ra_scale=1.0 + 0.018 * (rap - 3.0),
        size=size,
        systole_frac=_u(rng, pop.systole_frac),
    )
    return Patient(pid, population, sex, age, weight, height, hr, tr_v, rap, heart)


def sample_acquisition(
    rng: np.random.Generator, site: SiteConfig, heart_size: float, view_depth: float
) -> Acquisition:
    return Acquisition(
        depth_cm=_u(rng, site.depth_per_size_cm) * heart_size * view_depth,
        sector_deg=_u(rng, site.sector_deg),
        angle_deg=_u(rng, site.angle_deg),
        offset_x_cm=_u(rng, site.offset_cm) * heart_size,
        offset_y_cm=_u(rng, site.offset_cm) * heart_size,
        gain_db=_u(rng, site.gain_db),
        dynamic_range_db=_u(rng, site.dynamic_range_db),
        noise_db=_u(rng, site.noise_db),
        freq_mhz=_u(rng, site.freq_mhz),
        attenuation_db_cm_mhz=site.attenuation_db_cm_mhz,
        tgc_residual_db_cm=_u(rng, site.tgc_residual_db_cm),
        psf_axial_cm=_u(rng, site.psf_axial_cm),
        psf_lateral_deg=_u(rng, site.psf_lateral_deg),
        speckle_static=_u(rng, site.speckle_static),
        speckle_ar=_u(rng, site.speckle_ar),
        gamma=_u(rng, site.gamma),
        clutter=_u(rng, site.clutter),
        fps=_u(rng, site.fps),
        white_level_db=site.white_level_db,
    )


def variation_rng(cfg: SynthConfig, seed: int, *keys: str | int) -> np.random.Generator | None:
    """The Generator of a clip's acquisition variation (its own stream: switching the variation
    leaves every other draw alone); None when the world's variation is off."""
    return rng_for(seed, *keys, "variation") if cfg.variation == "realistic" else None


def acquire(
    rng: np.random.Generator,
    cfg: SynthConfig,
    site: str,
    patient: Patient,
    view: str,
    vrng: np.random.Generator | None,
) -> tuple[Acquisition, Patient, float]:
    """A clip's acquisition, the patient as the clip shows them (its heart rate) and the lowest frame
    rate a short clip may be slowed to: the site's draw, varied per clip when `vrng` is given."""
    site_cfg = cfg.sites[site]
    view_depth = cfg.tissue.view_depth[view]
    acq = sample_acquisition(rng, site_cfg, patient.heart.size, view_depth)
    if vrng is None:
        return acq, patient, site_cfg.fps[0]
    var = cfg.realistic[patient.population]
    v = vary(vrng, acq, var, patient.heart, patient.heart_rate_bpm, view, view_depth)
    return v.acq, replace(patient, heart_rate_bpm=v.heart_rate_bpm), v.fps_min


def sample_timing(
    rng: np.random.Generator, video: VideoConfig, fps: float, fps_min: float, heart_rate_bpm: float
) -> tuple[int, float, float]:
    """(frames, fps, start phase): lowers fps (not below fps_min) or adds frames so a video spans at
    least `min_cycles` beats; short videos start in late diastole so they hold an ED and an ES."""
    n = int(rng.integers(video.frames[0], video.frames[1] + 1))
    cycle_s = 60.0 / heart_rate_bpm
    need_s = video.min_cycles * cycle_s
    if n / fps < need_s:
        fps = max(fps_min, n / need_s)
        n = max(n, int(np.ceil(need_s * fps)))
    cycles = n / fps / cycle_s
    start = float(rng.uniform(0.0, 1.0)) if cycles >= 1.3 else float(rng.uniform(0.85, 1.0))
    return n, float(fps), start


@dataclass
class SimVideo:
    """A rendered video and what is needed to trace it."""

    frames: np.ndarray  # [T, H, W] uint8 grey
    fps: float
    view: str
    patient: Patient
    acq: Acquisition
    geometry: FrameGeometry
    grid: PolarGrid
    state: LVState
    labels: np.ndarray | None = None  # [T, n_r, n_theta] uint8 polar label map (kept on request)
    amplitude: np.ndarray | None = None  # [T, n_r, n_theta] envelope (kept on request)

    @property
    def heart(self) -> Heart:
        """The heart as imaged (and traced): apical views may be foreshortened."""
        return shown_heart(self.patient.heart, self.view, self.acq)

    @property
    def ed_frame(self) -> int:
        return int(np.argmax(self.state.volume_ml))

    @property
    def es_frame(self) -> int:
        return int(np.argmin(self.state.volume_ml))

    def to_pixels(self, anatomy_points: np.ndarray) -> np.ndarray:
        return self.geometry.to_pixels(anatomy_to_view(anatomy_points, self.acq))

    def disk_tracing(self, frame: int) -> np.ndarray:
        """[1 + 20, 4] long axis + chords in pixels of the written frame."""
        rows = apical_lv_axis_and_chords(self.view, self.heart, self.state, frame, N_DISKS)
        p1 = self.to_pixels(rows[:, :2])
        p2 = self.to_pixels(rows[:, 2:])
        return np.concatenate([p1, p2], axis=1)

    def contour(self, frame: int) -> np.ndarray:
        """LV endocardial polygon [n, 2] in pixels (apical views: open at the mitral plane)."""
        if self.view == "PSAX":
            pts = psax_lv_contour(self.heart, self.state, frame)
        else:
            pts = apical_lv_contour(self.view, self.heart, self.state, frame)
        return self.to_pixels(pts)


def texture_field(rng: np.random.Generator, shape: tuple[int, int], sd: float) -> np.ndarray:
    """Smooth log-normal soft-tissue texture (mean ~1) on the polar grid."""
    from scipy.ndimage import gaussian_filter

    g = gaussian_filter(rng.standard_normal(shape), sigma=(shape[0] / 12, shape[1] / 12), mode="wrap")
    g /= max(float(g.std()), 1e-6)
    return np.exp(sd * g - 0.5 * sd**2).astype(np.float32)


def render_video(
    patient: Patient,
    view: str,
    acq: Acquisition,
    geometry: FrameGeometry,
    n_frames: int,
    start_phase: float,
    rng: np.random.Generator,
    tissue: TissueConfig,
    video: VideoConfig,
    keep_maps: bool = False,
) -> SimVideo:
    """Render `view` of `patient` as grey uint8 frames [T, H, W] in `geometry`."""
    grid = polar_grid_for(
        geometry, acq.depth_cm, acq.sector_deg, video.polar_r_per_px, video.polar_theta_per_px
    )
    t = np.arange(n_frames) / acq.fps
    phase = start_phase + t * patient.heart_rate_bpm / 60.0
    heart = shown_heart(patient.heart, view, acq)
    st = lv_state(heart, phase)
    ax, ay = view_to_anatomy(*grid.view_xy(), acq)
    texture = texture_field(rng, (grid.n_r, grid.n_theta), tissue.texture_sd)
    scene = render_scene(view, heart, st, ax, ay, tissue, texture, labels=keep_maps)
    # tissue cells 1.5x finer than the grid: at rest no two samples share a cell
    scat = scatterers(
        rng,
        scene.material_x,
        scene.material_y,
        grid.dr / 1.5,
        grid.dtheta / 1.5,
        acq.speckle_static,
        acq.speckle_ar,
    )
    amp = envelope(scene.reflectivity, scat, grid, acq, rng)
    bmode = ScanConverter(grid, geometry)(log_compress(amp, acq))
    return SimVideo(
        frames=to_uint8(bmode),
        fps=acq.fps,
        view=view,
        patient=patient,
        acq=acq,
        geometry=geometry,
        grid=grid,
        state=st,
        labels=scene.labels,
        amplitude=amp if keep_maps else None,
    )
