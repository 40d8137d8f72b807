"""EchoSynth settings: one dataclass tree, filled from a preset YAML in conf/synth/.

Ranges are `[low, high]` lists and are sampled uniformly per patient or per video. The dataclass
defaults only make the tree valid; every preset YAML spells out the numbers it uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from echojepa.confkeys import register
from echojepa.paths import CONF_DIR

# 1.1: per-video acquisition variation (`variation: realistic`); `variation: off` writes 1.0's world
GENERATOR_VERSION = "echosynth-1.1"
VARIATION_MODES = ("realistic", "off")


@dataclass
class SiteConfig:
    """Scanner settings of one site: every knob is drawn per video from its range."""

    depth_per_size_cm: list[float] = field(default_factory=lambda: [14.0, 17.0])  # x heart size
    sector_deg: list[float] = field(default_factory=lambda: [70.0, 85.0])
    angle_deg: list[float] = field(default_factory=lambda: [-5.0, 5.0])  # probe rotation
    offset_cm: list[float] = field(default_factory=lambda: [-0.5, 0.5])  # heart position jitter (x, y)
    gain_db: list[float] = field(default_factory=lambda: [-3.0, 3.0])
    dynamic_range_db: list[float] = field(default_factory=lambda: [50.0, 60.0])
    noise_db: list[float] = field(default_factory=lambda: [-50.0, -40.0])  # at max depth, re myocardium
    freq_mhz: list[float] = field(default_factory=lambda: [2.5, 3.5])
    attenuation_db_cm_mhz: float = 0.5
    tgc_residual_db_cm: list[float] = field(default_factory=lambda: [-0.4, 0.2])  # left after TGC
    psf_axial_cm: list[float] = field(default_factory=lambda: [0.05, 0.08])  # Gaussian sigma
    psf_lateral_deg: list[float] = field(default_factory=lambda: [0.8, 1.2])  # sigma; cm width ~ depth
    speckle_static: list[float] = field(default_factory=lambda: [0.8, 0.9])  # share moving with tissue
    speckle_ar: list[float] = field(default_factory=lambda: [0.6, 0.8])  # frame AR(1) of the rest
    gamma: list[float] = field(default_factory=lambda: [1.8, 2.2])  # grey map B ** gamma
    white_level_db: float = 6.0  # echo amplitude (dB re myocardium) shown white at 0 dB gain
    clutter: list[float] = field(default_factory=lambda: [0.0, 0.05])  # near-field haze reflectivity
    fps: list[float] = field(default_factory=lambda: [30.0, 60.0])


@dataclass
class FpsReference:
    """Where a drawn frame rate holds: deeper or wider sectors scan fewer frames per second."""

    depth_cm: float = 16.0
    sector_deg: float = 75.0


@dataclass
class VariationConfig:
    """Per-video acquisition variation of one population (`variation: realistic`).

    Operator and patient settings (geometry, gain, TGC, frequency, frame rate) are drawn from these
    ranges and replace or shift the site's draw; scanner traits (PSF at the site's frequency, dynamic
    range, grey map, noise floor, clutter) stay the site's. Relative ranges are dB added to the site's.
    """

    depth_per_size_cm: list[float] = field(default_factory=lambda: [13.0, 21.0])  # x heart size x view
    sector_deg: list[float] = field(default_factory=lambda: [60.0, 90.0])
    angle_deg: list[float] = field(default_factory=lambda: [-10.0, 10.0])  # probe aim, about the probe
    rotation_deg: list[float] = field(default_factory=lambda: [-15.0, 15.0])  # heart axis, about the LV
    offset_x_cm: list[float] = field(default_factory=lambda: [-1.0, 1.0])  # x heart size
    offset_y_cm: list[float] = field(default_factory=lambda: [-0.5, 1.5])  # x heart size (chest wall)
    fit_margin_cm: float = 0.5  # the LV (apical, PSAX) stays this far inside the sector and frame
    fit_tries: int = 30
    gain_db: list[float] = field(default_factory=lambda: [-6.0, 6.0])  # relative
    dynamic_range_db: list[float] = field(default_factory=lambda: [-5.0, 5.0])  # relative
    tgc_sliders: int = 8
    tgc_db: list[float] = field(default_factory=lambda: [-4.0, 4.0])  # relative, per slider
    freq_mhz: list[float] = field(default_factory=lambda: [1.5, 4.0])
    penetration_cm_mhz: float = 53.0  # highest usable frequency = this / depth
    freq_choice: list[float] = field(default_factory=lambda: [0.6, 1.0])  # share of the highest usable
    fps: list[float] = field(default_factory=lambda: [30.0, 80.0])
    fps_reference: FpsReference = field(default_factory=FpsReference)
    heart_rate_jitter: float = 0.05  # relative sd of a clip's heart rate about the patient's
    foreshortening: list[float] = field(default_factory=lambda: [0.0, 0.12])  # apical LV length lost
    shadow_prob: float = 0.15  # chance of a rib / lung shadow across the sector
    shadow_width_deg: list[float] = field(default_factory=lambda: [5.0, 15.0])
    shadow_db: list[float] = field(default_factory=lambda: [6.0, 20.0])


@dataclass
class PopulationConfig:
    """Who the patients are (adults or children)."""

    size: list[float] = field(default_factory=lambda: [0.92, 1.08])  # linear heart/body scale
    age_years: list[float] = field(default_factory=lambda: [25.0, 90.0])
    heart_rate_bpm: list[float] = field(default_factory=lambda: [50.0, 110.0])
    edv_ml_mean: float = 120.0  # at size 1; scaled by size**3
    edv_ml_sd: float = 25.0
    edv_ml_clip: list[float] = field(default_factory=lambda: [60.0, 280.0])
    dilation_per_ef_point: float = 0.012  # EDV grows by this fraction per EF point below 55
    ef_bins: list[list[float]] = field(default_factory=lambda: [[52.0, 72.0], [40.0, 52.0], [15.0, 40.0]])
    ef_bin_weights: list[float] = field(default_factory=lambda: [0.65, 0.2, 0.15])
    aspect: list[float] = field(default_factory=lambda: [0.5, 0.58])  # LV D / L at ED
    shortening: list[float] = field(default_factory=lambda: [0.14, 0.2])  # long axis, at EF 60
    wall_cm: list[float] = field(default_factory=lambda: [0.8, 1.1])  # at size 1
    systole_frac: list[float] = field(default_factory=lambda: [0.3, 0.37])
    tr_velocity_normal: list[float] = field(default_factory=lambda: [1.8, 2.7])  # m/s
    tr_velocity_high: list[float] = field(default_factory=lambda: [2.9, 4.6])
    pulmonary_hypertension_fraction: float = 0.25
    rap_choices: list[float] = field(default_factory=lambda: [3.0, 8.0, 15.0])
    rap_weights: list[float] = field(default_factory=lambda: [0.6, 0.3, 0.1])
    rv_relative: float = 1.0  # RV width relative to the adult norm (children: larger)
    rv_dilation_per_mmhg: float = 0.012  # RV width gain per mmHg RVSP above 30
    flattening_per_mmhg: float = 0.006  # septal flattening per mmHg RVSP above 35
    flattening_max: float = 0.4
    female_fraction: float = 0.5


@dataclass
class TissueConfig:
    """Reflectivities (myocardium = 1) and per-view depth factors."""

    blood: float = 0.001
    myocardium: float = 1.0
    pericardium: float = 2.5
    valve: float = 1.5
    atrial_wall: float = 0.6
    background: float = 0.08
    fat: float = 0.15
    liver: float = 0.25
    texture_sd: float = 0.35  # log-normal texture of soft tissue
    view_depth: dict[str, float] = field(
        default_factory=lambda: {
            "A4C": 1.0,
            "A2C": 1.0,
            "A3C": 1.0,
            "A5C": 1.0,
            "PLAX": 0.95,
            "PSAX": 0.9,
            "Subcostal": 1.15,
        }
    )


@dataclass
class EchoNetConfig:
    train: int = 6
    val: int = 2
    test: int = 2
    height: int = 112
    width: int = 112


@dataclass
class SiteBConfig:
    """External test site: every row is Split TEST."""

    test: int = 4


@dataclass
class PediatricConfig:
    exams: int = 6  # each exam writes one A4C and one PSAX video
    folds: int = 10


@dataclass
class MimicConfig:
    subjects: int = 3
    studies_per_subject: list[int] = field(default_factory=lambda: [1, 2])
    extra_views: list[int] = field(default_factory=lambda: [1, 3])  # beyond A4C, PSAX, PLAX
    core_view_prob: float = 0.9  # chance each of A4C / PSAX / PLAX is in a study
    stills: int = 1
    doppler: int = 1
    height: int = 160
    width: int = 224
    ycbcr_fraction: float = 0.6  # YBR_FULL_422, the rest RGB
    cine_rate_only_fraction: float = 0.25  # files with CineRate and no FrameTime
    subject_id_start: int = 10000032
    study_id_start: int = 50000001


@dataclass
class VideoConfig:
    frames: list[int] = field(default_factory=lambda: [16, 24])
    min_cycles: float = 0.6  # a video covers at least this many beats (fps lowered within range)
    polar_r_per_px: float = 1.0  # polar samples per output pixel of depth
    polar_theta_per_px: float = 0.7  # polar samples per output pixel of arc at full depth
    tracer_jitter: float = 0.0  # relative sd of traced chord lengths (a human tracer's noise)


@dataclass
class SynthConfig:
    name: str = "tiny"
    workers: int = 1  # processes rendering videos (output bytes do not depend on it)
    video: VideoConfig = field(default_factory=VideoConfig)
    echonet: EchoNetConfig = field(default_factory=EchoNetConfig)
    site_b: SiteBConfig = field(default_factory=SiteBConfig)
    pediatric: PediatricConfig = field(default_factory=PediatricConfig)
    mimic: MimicConfig = field(default_factory=MimicConfig)
    tissue: TissueConfig = field(default_factory=TissueConfig)
    sites: dict[str, SiteConfig] = field(
        default_factory=lambda: {"A": SiteConfig(), "B": SiteConfig(), "pediatric": SiteConfig()}
    )
    populations: dict[str, PopulationConfig] = field(
        default_factory=lambda: {"adult": PopulationConfig(), "pediatric": PopulationConfig()}
    )
    # "realistic" | "off" (each site's fixed-protocol ranges only). Typed Any so that YAML's reading
    # of a bare `off` (false) reaches _validate as a bool and is read back as "off".
    variation: Any = "realistic"
    realistic: dict[str, VariationConfig] = field(
        default_factory=lambda: {"adult": VariationConfig(), "pediatric": VariationConfig()}
    )


@dataclass
class SynthPreset(SynthConfig):
    """A conf/synth/<preset>.yaml file: a SynthConfig tree, plus ``base`` (the preset it differs from,
    read by ``_preset_layers``). Every preset is merged over world.yaml into SynthConfig, whose structured
    merge refuses a key it does not have."""

    base: str | None = None


register("synth", SynthPreset, f"{__name__}.load_config")


@dataclass(frozen=True)
class WorldRef:
    """A synthetic world named in another config (`data.synth`, evaluate.yaml `synth`, a study's
    `world`): its preset (conf/synth/<preset>.yaml) and seed."""

    preset: str
    seed: int = 0


WORLD_FILE = "world"  # conf/synth/world.yaml: the physics every preset shares


def preset_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "synth").glob("*.yaml") if p.stem != WORLD_FILE)


def _preset_path(preset: str | Path) -> Path:
    path = Path(preset)
    if path.suffix not in (".yaml", ".yml"):
        path = CONF_DIR / "synth" / f"{preset}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown EchoSynth preset {str(preset)!r} (no {path}); known: {preset_names()}")
    return path


def _preset_layers(preset: str | Path) -> list:
    """The preset's YAML and, first, the presets it names as `base` (a preset that differs from
    another in a few keys, e.g. demo_off = demo without the acquisition variation)."""
    layers, seen = [], []
    path = _preset_path(preset)
    while True:
        if path in seen:
            raise ValueError(f"EchoSynth preset {path}: its `base` chain loops back to itself")
        seen.append(path)
        layer = OmegaConf.load(path)
        base = layer.pop("base", None)
        layers.insert(0, layer)
        if base is None:
            return layers
        path = _preset_path(base)


def load_config(preset: str | Path | SynthConfig, **overrides: object) -> SynthConfig:
    """A preset name (`tiny`, `demo`, `full`), a YAML path or a ready SynthConfig -> SynthConfig.

    A preset YAML is merged over conf/synth/world.yaml (sites, populations, tissue, variation), so
    presets only hold what differs (counts, video lengths); a preset may name another as its `base`.
    `overrides` are dotted keys (`echonet.train=3`, `variation=off`).
    """
    if isinstance(preset, SynthConfig):
        base = OmegaConf.structured(preset)
    else:
        layers = _preset_layers(preset)
        world = CONF_DIR / "synth" / f"{WORLD_FILE}.yaml"
        base = OmegaConf.merge(OmegaConf.structured(SynthConfig), OmegaConf.load(world), *layers)
    if overrides:
        base = OmegaConf.merge(base, OmegaConf.from_dotlist([f"{k}={v}" for k, v in overrides.items()]))
    cfg = OmegaConf.to_object(base)
    _validate(cfg)
    return cfg


def _validate(cfg: SynthConfig) -> None:
    for name in ("A", "B", "pediatric"):
        if name not in cfg.sites:
            raise ValueError(f"EchoSynth config needs sites.{name}")
    for name in ("adult", "pediatric"):
        if name not in cfg.populations:
            raise ValueError(f"EchoSynth config needs populations.{name}")
    lo, hi = cfg.video.frames
    if not 2 <= lo <= hi:
        raise ValueError(f"video.frames must be [low, high] with 2 <= low <= high, got {cfg.video.frames}")
    if cfg.variation is False:  # YAML 1.1 reads `variation: off` (and `variation=off`) as false
        cfg.variation = "off"
    if cfg.variation not in VARIATION_MODES:
        raise ValueError(f"variation must be one of {list(VARIATION_MODES)}, got {cfg.variation!r}")
    for name in ("adult", "pediatric"):
        if name not in cfg.realistic:
            raise ValueError(f"EchoSynth config needs realistic.{name}")
    for pop_name, var in cfg.realistic.items():
        if var.tgc_sliders < 2 or var.fit_tries < 1:
            raise ValueError(f"realistic.{pop_name}: tgc_sliders must be >= 2 and fit_tries >= 1")
    for pop_name, pop in cfg.populations.items():
        if len(pop.ef_bins) != len(pop.ef_bin_weights):
            raise ValueError(f"populations.{pop_name}: ef_bins and ef_bin_weights differ in length")
        if len(pop.rap_choices) != len(pop.rap_weights):
            raise ValueError(f"populations.{pop_name}: rap_choices and rap_weights differ in length")
