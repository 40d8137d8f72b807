"""Run a trained model on real files: view, LVEF (A4C only) and the probes' attention maps.

Model bundle
    One weights-only file (``make_bundle``) holding everything a prediction needs: the backbone's
    config and weights (self-contained: the pretraining checkpoint is not needed afterwards), its
    identity, and per task the probe checkpoint's content plus the clip sampling the probe was trained
    with. ``Predictor.from_bundle`` rebuilds the backbone, loads the bundled weights strictly, checks
    that the rebuilt backbone has the recorded identity, and refuses any probe whose
    ``backbone_identity`` differs (a probe trained on other features predicts garbage, silently).

Per file
    Decode through ``echojepa.io.read_video`` (DICOM region crop and fps rules; AVI/MP4), cut each
    task's clips (its protocol's sampling: centre clip(s), or every window averaged with
    ``clip_mode="all"``), run the frozen backbone once per distinct clip, then each task's chosen probe
    head. LVEF is reported only when the view probe's top class is A4C (``gates``): an EF read off a
    PLAX clip is not an EF. Stills, Doppler spectra and undecodable files become ``scorable: false``
    with the reason; the other files still get results. Results carry the path the user gave,
    acquisition facts (frames, fps, kind, region) and predictions, never DICOM patient identifiers.

Attention maps
    The chosen attentive head's cross-attention weights over the tokens, averaged over attention heads,
    per clip, reshaped to the backbone's token grid (T', H', W'), upsampled to the model's input frames
    and overlaid as a heatmap: a PNG strip (a few frames per clip) and an animated GIF per file. A
    task's maps share one min-max scale (least / most attended token of any of its clips = 0 / 1), so
    its clips compare with each other.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor

from echojepa.data.clips import ClipSpec, sample_clip_indices
from echojepa.data.transforms import split_normalize, to_tensor_video
from echojepa.io import NotACineError, VideoReadError, probe, read_video
from echojepa.io.atomic import atomic_torch_save, atomic_write
from echojepa.io.weights import read_weights_file
from echojepa.models.checkpoint import load_state_dict_strict
from echojepa.paths import CONF_DIR
from echojepa.probe.backbones import (
    Backbone,
    PanEchoBackbone,
    PixelStatsBackbone,
    ViTBackbone,
    _finish_vit,
    _vit_from_preset,
    build_backbone,
)
from echojepa.probe.heads import AttentiveProbe, ProbeTask, StackableHead, load_probe
from echojepa.probe.taskdata import all_clip_groups, clip_spec

BUNDLE_FORMAT = "echojepa-predict-bundle"
BUNDLE_VERSION = 1
REQUIRED_TASKS = ("view", "lvef")
# Probes that pool several views of a study cannot score one file.
_SINGLE_FILE_PROBES = ("attentive", "linear", "mlp")
# Config keys holding paths on the machine that made the bundle; the bundle carries the weights instead.
_PATH_KEYS = ("checkpoint", "weights")
NON_CINE_REASONS = {"still": "still image", "doppler": "Doppler spectrum"}


class BundleError(ValueError):
    """A model bundle that must not be used for prediction."""


@dataclass(frozen=True)
class PredictOptions:
    """How files are scored and maps drawn. ``gates``: task -> the view class the view probe's top
    prediction must be for that task to be reported."""

    clip_mode: str = "center"  # "center" (the protocol's clips) or "all" (every window, averaged)
    gates: Mapping[str, str] = field(default_factory=lambda: {"lvef": "A4C"})
    batch_size: int = 8  # clips per backbone call
    attention_frames: int = 6  # frames per clip in the PNG strip
    attention_clips: int = 4  # clips per task drawn (the first ones)
    display_size: int = 160  # px per panel
    overlay_alpha: float = 0.45
    colormap: str = "inferno"
    gif_frame_ms: int = 120

    def __post_init__(self) -> None:
        if self.clip_mode not in ("center", "all"):
            raise ValueError(f"clip_mode must be 'center' or 'all', got {self.clip_mode!r}")
        if min(self.batch_size, self.attention_frames, self.attention_clips, self.display_size) < 1:
            raise ValueError(f"PredictOptions sizes must be >= 1, got {self}")
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise ValueError(f"overlay_alpha must be in [0, 1], got {self.overlay_alpha}")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> PredictOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"predict options: unknown keys {unknown}; accepted: {sorted(known)}")
        return cls(**dict(cfg))


# ----- bundle -------------------------------------------------------------------------------------------
def _portable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The backbone config as plain JSON types (weights-only loadable), without weight-file paths."""
    plain = json.loads(json.dumps(dict(config), default=str))
    return {**plain, **{k: None for k in _PATH_KEYS if k in plain}}


def _task_config(name: str, task_cfgs: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    if task_cfgs is not None and name in task_cfgs:
        return dict(task_cfgs[name])
    path = CONF_DIR / "task" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"task {name!r}: no conf/task/{name}.yaml; pass its config in task_cfgs")
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert isinstance(cfg, dict)
    return cfg


def _check_probe(
    name: str, where: str, task: ProbeTask, meta: Mapping[str, Any], n_heads: int, kind: str, identity: str
) -> int:
    """Refuses a probe that cannot serve ``name`` on this backbone; returns its chosen head."""
    if meta.get("backbone_identity") != identity:
        raise BundleError(
            f"{where}: probe for {name!r} was trained on backbone {meta.get('backbone')!r} "
            f"(identity {str(meta.get('backbone_identity'))[:12]}...), not on the bundled one "
            f"({identity[:12]}...): refusing"
        )
    if meta.get("task") not in (None, name):
        raise BundleError(f"{where}: probe was trained for task {meta.get('task')!r}, not {name!r}")
    if kind not in _SINGLE_FILE_PROBES:
        raise BundleError(f"{where}: a {kind!r} probe needs a whole study, not one file")
    if "chosen_head" not in meta:
        raise BundleError(f"{where}: probe meta has no chosen_head (the head picked on validation)")
    head = int(meta["chosen_head"])
    if not 0 <= head < n_heads:
        raise BundleError(f"{where}: chosen_head {head} is out of range for a bank of {n_heads}")
    if task.kind == "classification" and not task.class_names:
        raise BundleError(f"{where}: classification probe for {name!r} has no class names")
    return head


def make_bundle(
    out: str | os.PathLike,
    backbone_cfg: Mapping[str, Any],
    probes: Mapping[str, str | os.PathLike],
    task_cfgs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write one self-contained, weights-only model bundle (atomic) and return its path.

    ``probes``: task name -> probe checkpoint (echojepa.probe.heads.save_probe, with meta
    ``backbone_identity`` and ``chosen_head`` as the protocols write it); needs at least "view" and
    "lvef". Each task's clip sampling comes from conf/task/<name>.yaml unless ``task_cfgs`` gives it.
    Refuses probes trained on another backbone.
    """
    missing = [t for t in REQUIRED_TASKS if t not in probes]
    if missing:
        raise BundleError(f"a model bundle needs probes for {list(REQUIRED_TASKS)}; missing {missing}")
    backbone = build_backbone(backbone_cfg)
    identity = backbone.identity()
    tasks: dict[str, Any] = {}
    for name, probe_path in probes.items():
        bank, task, meta = load_probe(probe_path)  # refuses missing, mismatched or untrained probes
        _check_probe(name, str(probe_path), task, meta, len(bank), bank.kind, identity)
        tcfg = _task_config(name, task_cfgs)
        tasks[name] = {
            "probe": torch.load(probe_path, map_location="cpu", weights_only=True),
            "clip": asdict(clip_spec(tcfg, backbone, "center")),
            "unit": tcfg.get("unit"),
        }
    bundle = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "backbone": {
            "name": backbone.name,
            "kind": backbone.kind,
            "identity": identity,
            "config": _portable_config(backbone.config),
            "state_dict": {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items()},
        },
        "tasks": tasks,
    }
    out = Path(out)
    atomic_torch_save(bundle, out)
    return out


def _rebuild_backbone(config: dict[str, Any], state: Mapping[str, Tensor], where: str) -> Backbone:
    """The bundled backbone's architecture, with the bundled weights loaded strictly."""
    kind = config.get("kind")
    if kind in ("checkpoint", "vjepa2"):
        # the same construction as build_backbone, minus reading the (absent) checkpoint file
        arch = config.get("model")
        if not isinstance(arch, Mapping):
            raise BundleError(f"{where}: backbone config has no resolved model architecture")
        backbone = _finish_vit(_vit_from_preset(arch, config.get("rope_repeat_layout")), config, arch)
    elif kind in ("echoprime", "panecho"):
        backbone = build_backbone({**config, "weights": None, "allow_random": True})  # weights below
    else:
        backbone = build_backbone(config)
    load_state_dict_strict(backbone, dict(state), what=f"bundled backbone of {where}")
    return backbone


@dataclass
class TaskHead:
    """One task's chosen probe head and how its clips are cut."""

    name: str
    head: StackableHead
    task: ProbeTask
    spec: ClipSpec
    chosen: int
    unit: str | None = None


def _load_bundled_probe(content: Any, name: str, where: str) -> tuple[Any, ProbeTask, dict[str, Any]]:
    """load_probe's checks on bundled probe content (it reads files, so the content goes through one)."""
    with tempfile.TemporaryDirectory(prefix="echojepa-probe-") as tmp:
        path = Path(tmp) / f"{name}.pt"
        torch.save(content, path)
        try:
            return load_probe(path)
        except (ValueError, KeyError, TypeError) as exc:
            reason = " ".join(str(exc).replace(str(path), "it").split())  # not the temp file's name
            raise BundleError(f"{where}: bundled probe {name!r} is unusable: {reason}") from exc


def _one_line(exc: BaseException, path: Path) -> str:
    """An exception's message on one line, without a repeat of the bundle's path."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.removeprefix(f"{path}: ").removeprefix(f"{path} ")


def _read_bundle(path: Path) -> dict[str, Any]:
    """The bundle file's dict, loaded weights-only; one-line errors naming the file (never torch's advice
    to load untrusted files with ``weights_only=False``)."""
    if not path.exists():
        raise FileNotFoundError(f"model bundle {path} does not exist")
    ckpt = read_weights_file(path, "model bundle", error=BundleError)
    if not isinstance(ckpt, dict) or ckpt.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not an echojepa model bundle (make one with make_bundle)")
    if ckpt.get("version") != BUNDLE_VERSION:
        raise BundleError(f"{path}: bundle version {ckpt.get('version')}, this code reads {BUNDLE_VERSION}")
    return ckpt


def _parse_bundle(ckpt: Mapping[str, Any], path: Path) -> tuple[Backbone, dict[str, TaskHead]]:
    """The bundle's backbone (weights loaded, identity checked) and each task's chosen head."""
    bb, tasks = ckpt.get("backbone") or {}, ckpt.get("tasks") or {}
    if not isinstance(bb, Mapping) or not isinstance(tasks, Mapping):
        raise BundleError(f"{path}: bundle 'backbone' and 'tasks' must be dicts")
    absent = [k for k in ("config", "state_dict", "identity") if k not in bb]
    if absent:
        raise BundleError(f"{path}: bundle backbone entry lacks {absent}")
    if not isinstance(bb["config"], Mapping) or not isinstance(bb["state_dict"], Mapping):
        raise BundleError(f"{path}: bundle backbone 'config' and 'state_dict' must be dicts")
    if not bb["state_dict"] and bb["config"].get("kind") != "pixel_stats":
        raise BundleError(f"{path}: bundle holds no backbone weights")
    missing = [t for t in REQUIRED_TASKS if t not in tasks]
    if missing:
        raise BundleError(f"{path}: bundle has no probe for {missing}")
    backbone = _rebuild_backbone(dict(bb["config"]), bb["state_dict"], str(path))
    identity = backbone.identity()
    if identity != bb["identity"]:
        raise BundleError(f"{path}: rebuilt backbone's identity differs from the recorded one: refusing")
    heads = {}
    for name, entry in tasks.items():
        if (
            not isinstance(entry, Mapping)
            or "probe" not in entry
            or not isinstance(entry.get("clip"), Mapping)
        ):
            raise BundleError(f"{path}: task {name!r} lacks its probe or clip sampling")
        bank, task, meta = _load_bundled_probe(entry["probe"], name, str(path))
        chosen = _check_probe(name, f"{path} [{name}]", task, meta, len(bank), bank.kind, identity)
        try:
            spec = ClipSpec(**entry["clip"])
        except (TypeError, ValueError) as exc:
            raise BundleError(
                f"{path}: task {name!r} has unusable clip sampling ({_one_line(exc, path)})"
            ) from exc
        heads[name] = TaskHead(name, bank.export_head(chosen), task, spec, chosen, entry.get("unit"))
    return backbone, heads


# ----- prediction ---------------------------------------------------------------------------------------
def token_grid(backbone: Backbone, clip_shape: Sequence[int], num_tokens: int) -> tuple[int, int, int] | None:
    """(T', H', W') of the tokens one clip [C, T, H, W] gives, or None when tokens are not a grid."""
    _, t, h, w = clip_shape
    if isinstance(backbone, ViTBackbone):
        grid = backbone.encoder.input_grid(torch.empty(1, *clip_shape, device="meta"))
    elif isinstance(backbone, PixelStatsBackbone):
        grid = (1, backbone.grid, backbone.grid)
    elif isinstance(backbone, PanEchoBackbone):
        grid = (t, 1, 1)
    else:
        return None
    return tuple(int(g) for g in grid) if int(np.prod(grid)) == num_tokens else None  # type: ignore[return-value]


def _unscorable(file: str, reason: str) -> dict[str, Any]:
    return {"file": file, "scorable": False, "reason": reason}


class Predictor:
    """A frozen backbone plus each task's chosen probe head: ``predict_file(path) -> dict``."""

    def __init__(
        self,
        backbone: Backbone,
        heads: Mapping[str, TaskHead],
        options: PredictOptions | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        missing = [t for t in REQUIRED_TASKS if t not in heads]
        if missing:
            raise BundleError(f"Predictor needs heads for {list(REQUIRED_TASKS)}; missing {missing}")
        self.options = options or PredictOptions()
        view_classes = heads["view"].task.class_names or []
        for task, gate in self.options.gates.items():
            if task in heads and gate not in view_classes:
                raise BundleError(
                    f"gate for {task!r} needs view {gate!r}; the view probe knows {view_classes}"
                )
        self.device = torch.device(device)
        self.backbone = backbone.to(self.device)
        self.heads = {k: heads[k] for k in ["view", *sorted(set(heads) - {"view"})]}  # view decides gates
        for th in self.heads.values():
            th.head.to(self.device).eval()
        pre = backbone.preprocess
        self.transform = pre.transform(False)  # the backbone's own eval recipe (crop, resize, order)
        self.geometry, _ = split_normalize(self.transform)  # the model's view of the frames, 0-1
        self._names_used: dict[str, int] = {}

    @classmethod
    def from_bundle(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        options: PredictOptions | None = None,
    ) -> Predictor:
        """Rebuild backbone and chosen probe heads from a bundle; refuses anything missing or mismatched.

        Raises FileNotFoundError for a missing bundle and BundleError (one line naming the file and the
        reason) for anything else wrong with it."""
        path = Path(path)
        ckpt = _read_bundle(path)
        try:
            backbone, heads = _parse_bundle(ckpt, path)
        except BundleError:
            raise
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            # a hand-edited or foreign dict: whatever broke, it is this file's fault
            raise BundleError(f"{path}: malformed model bundle ({_one_line(exc, path)})") from exc
        return cls(backbone, heads, options, device)

    # --- one file -------------------------------------------------------------------------------------
    def predict_file(self, path: str | os.PathLike, attention_dir: str | os.PathLike | None = None) -> dict:
        """Scores one file; never raises for a file that cannot be scored (see module docstring)."""
        shown = str(path)
        if not Path(path).exists():
            return _unscorable(shown, "file not found")
        if not Path(path).is_file():
            return _unscorable(shown, "not a file (a directory)" if Path(path).is_dir() else "not a file")
        try:
            info = probe(path)
            if info.kind != "cine":
                return _unscorable(shown, NON_CINE_REASONS.get(info.kind, f"not a cine ({info.kind})"))
            windows = {
                name: sample_clip_indices(info.frames, info.fps, th.spec, mode=self.options.clip_mode)
                for name, th in self.heads.items()
            }  # [W, F] source frame indices per task
            wanted = np.unique(np.concatenate([w.reshape(-1) for w in windows.values()]))
            video = read_video(path, wanted.tolist())
        except NotACineError as exc:
            return _unscorable(shown, NON_CINE_REASONS.get(exc.kind, exc.reason))
        except VideoReadError as exc:
            return _unscorable(shown, exc.reason)
        info = video.info
        result: dict[str, Any] = {
            "file": shown, "scorable": True, "kind": info.kind, "format": info.format,
            "frames": info.frames, "fps": float(info.fps), "fps_source": info.fps_source,
            "height": info.height, "width": info.width,
            "region": info.region.as_list() if info.region else None,
            "clip_mode": self.options.clip_mode, "clips": {k: int(len(w)) for k, w in windows.items()},
            "units": {k: th.unit for k, th in self.heads.items() if th.task.kind == "regression"},
        }  # fmt: skip
        clips = _ClipStore(video, self)
        maps: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
        want_maps = attention_dir is not None
        for name, th in self.heads.items():
            gate = self.options.gates.get(name)
            top = result["view"]["top"] if "view" in result else None
            if gate is not None and top != gate:
                result[name] = None
                result[f"{name}_reason"] = (
                    f"top view is {top}, not {gate}: {name} is only predicted on {gate}"
                )
                continue
            value, weights = self._run_task(th, windows[name], clips, want_maps)
            result[name] = value
            if weights is not None:
                maps[name] = (
                    weights,
                    [clips.display(w) for w in windows[name][: self.options.attention_clips]],
                )
        if want_maps:
            result["attention"] = self._write_maps(shown, Path(attention_dir), maps, clips, result)
        return result

    def _run_task(
        self, th: TaskHead, windows: np.ndarray, clips: _ClipStore, want_maps: bool
    ) -> tuple[Any, np.ndarray | None]:
        """The task's prediction averaged over its clip groups, and per-window attention [W, N] or None."""
        segments = th.spec.segments
        if self.options.clip_mode == "center":
            groups = [list(range(len(windows)))]
        else:
            groups = [g for _, g in all_clip_groups(np.array([len(windows)]), segments)]
        clips.prefetch(windows)  # distinct clips through the backbone in batches
        per_window = [clips.tokens(w) for w in windows]  # [N, D] each
        # segments of a group are concatenated on the token axis, as the probe was trained
        tokens = torch.stack([torch.cat([per_window[c] for c in g]) for g in groups])  # [G, S*N, D]
        tokens = tokens.to(self.device)
        with torch.no_grad():
            pred = th.task.predictions(th.head(tokens)[None])[0].mean(dim=0).cpu().numpy()  # [] or [C]
            weights = None
            if want_maps and isinstance(th.head, AttentiveProbe):
                a = th.head.attention_weights(tokens).mean(dim=1).cpu().numpy()  # [G, S*N]
                n = per_window[0].shape[0]
                summed = np.zeros((len(windows), n))
                counts = np.zeros(len(windows))
                for g, members in enumerate(groups):  # a window in several groups: average its maps
                    for s, w in enumerate(members):
                        summed[w] += a[g, s * n : (s + 1) * n]
                        counts[w] += 1
                weights = summed / np.maximum(counts, 1)[:, None]
        if th.task.kind == "regression":
            return float(pred), weights
        names = list(th.task.class_names or [])
        probs = {c: float(p) for c, p in zip(names, pred)}
        top = names[int(np.argmax(pred))]
        return {"top": top, "probability": probs[top], "probabilities": probs}, weights

    # --- attention maps ---------------------------------------------------------------------------------
    def _write_maps(
        self,
        shown: str,
        out_dir: Path,
        maps: Mapping[str, tuple[np.ndarray, list[np.ndarray]]],
        clips: _ClipStore,
        result: Mapping[str, Any],
    ) -> dict[str, Any]:
        if not maps:
            return {"png": None, "gif": None, "reason": f"no attentive probe head among {list(self.heads)}"}
        shape = clips.model_shape()
        n = next(iter(maps.values()))[0].shape[1]
        grid = token_grid(self.backbone, shape, n)
        if grid is None:
            reason = f"backbone kind {self.backbone.kind!r} gives {n} tokens per clip, not a token grid"
            return {"png": None, "gif": None, "reason": reason}
        rows: list[tuple[str, np.ndarray]] = []  # (label, overlaid frames [F, S, S, 3] uint8)
        for name, (weights, frames) in maps.items():
            heat = _heat_volume(weights[: len(frames)], grid, shape[1], shape[2])  # [W, F, S, S]
            lo, hi = float(heat.min()), float(heat.max())
            heat = (heat - lo) / max(hi - lo, 1e-12)  # one scale per task, so its clips compare
            for w, (h, f) in enumerate(zip(heat, frames)):
                label = f"{name} clip {w + 1}/{len(weights)}: {_short(result.get(name))}"
                rows.append((label, _overlay(f, h, self.options.colormap, self.options.overlay_alpha)))
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = self._unique_stem(Path(shown).stem)
        png, gif = out_dir / f"{stem}_attention.png", out_dir / f"{stem}_attention.gif"
        _write_strip(png, rows, self.options)
        _write_gif(gif, rows, self.options)
        return {"png": str(png), "gif": str(gif), "grid": list(grid), "tasks": list(maps)}

    def _unique_stem(self, stem: str) -> str:
        # two inputs with one stem (a/x.avi, b/x.dcm) must not overwrite each other's maps
        k = self._names_used.get(stem, 0)
        self._names_used[stem] = k + 1
        return stem if k == 0 else f"{stem}_{k + 1}"


class _ClipStore:
    """The decoded frames of one file; tokens per distinct clip computed once, in batches."""

    def __init__(self, video: Any, predictor: Predictor) -> None:
        self.video = video
        self.p = predictor
        self.row = {int(f): i for i, f in enumerate(video.frame_indices)}
        self._tokens: dict[tuple[int, ...], Tensor] = {}
        self._shape: tuple[int, ...] | None = None

    def _frames(self, window: np.ndarray) -> Tensor:
        return to_tensor_video(self.video.frames[[self.row[int(i)] for i in window]])  # [3, F, H, W]

    def tokens(self, window: np.ndarray) -> Tensor:
        key = tuple(int(i) for i in window)
        if key not in self._tokens:
            self._fill([key])
        return self._tokens[key]

    def prefetch(self, windows: Sequence[np.ndarray]) -> None:
        self._fill([tuple(int(i) for i in w) for w in windows])

    def _fill(self, keys: list[tuple[int, ...]]) -> None:
        todo = [k for k in dict.fromkeys(keys) if k not in self._tokens]
        bs = self.p.options.batch_size
        for i in range(0, len(todo), bs):
            chunk = todo[i : i + bs]
            clips = [self.p.transform(self._frames(np.array(k)))[0] for k in chunk]  # [3, F, S, S] each
            batch = torch.stack(clips)  # [B, 3, F, S, S]
            self._shape = tuple(batch.shape[1:])
            out = self.p.backbone(batch.to(self.p.device)).float().cpu()  # [B, N, D]
            self._tokens.update(zip(chunk, out))

    def model_shape(self) -> tuple[int, ...]:
        assert self._shape is not None, "no clip went through the backbone yet"
        return self._shape  # [3, F, S, S]

    def display(self, window: np.ndarray) -> np.ndarray:
        """The clip as the model sees it (resized, cropped), uint8 [F, S, S, 3]."""
        video, _ = self.p.geometry(self._frames(window)) if self.p.geometry else (self._frames(window), None)
        return (video.clamp(0, 1) * 255).round().byte().permute(1, 2, 3, 0).numpy()


def _short(value: Any) -> str:
    if isinstance(value, Mapping) and "top" in value:
        return f"{value['top']} ({value['probability']:.2f})"
    if isinstance(value, float):
        return f"{value:.1f}"
    return "-"


# ----- drawing ------------------------------------------------------------------------------------------
def _heat_volume(weights: np.ndarray, grid: tuple[int, int, int], frames: int, size: int) -> np.ndarray:
    """Token weights [W, N] on grid (T', H', W') -> per-frame heat [W, F, S, S]: bilinear in space; in
    time each frame takes its tubelet's value (a tubelet is one token for all its frames)."""
    t, h, w = grid
    a = torch.as_tensor(weights, dtype=torch.float32).reshape(-1, t, h, w)  # [W, T', H', W']
    up = F.interpolate(a.reshape(-1, 1, h, w), size=(size, size), mode="bilinear", align_corners=False)
    up = up.reshape(a.shape[0], t, size, size)  # [W, T', S, S]
    idx = (torch.arange(frames) * t) // frames  # frame -> its tubelet
    return up[:, idx].clamp_min(0).numpy()  # [W, F, S, S]


def _overlay(frames: np.ndarray, heat: np.ndarray, cmap: str, alpha: float) -> np.ndarray:
    """frames [F, S, S, 3] uint8, heat [F, S, S] in 0-1 -> blended uint8 [F, S, S, 3]."""
    from matplotlib import colormaps

    colour = colormaps[cmap](heat)[..., :3] * 255.0  # [F, S, S, 3]
    return np.clip((1.0 - alpha) * frames + alpha * colour, 0, 255).round().astype(np.uint8)


_LABEL_PX = 14


def _panel(frame: np.ndarray, label: str | None, size: int):
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR)
    if label is None:
        return img
    canvas = Image.new("RGB", (size, size + _LABEL_PX), (0, 0, 0))
    canvas.paste(img, (0, _LABEL_PX))
    ImageDraw.Draw(canvas).text((2, 1), label, fill=(255, 255, 255))
    return canvas


def _write_strip(path: Path, rows: Sequence[tuple[str, np.ndarray]], opt: PredictOptions) -> None:
    """One row per clip: a label bar, then ``attention_frames`` evenly spaced frames."""
    from PIL import Image, ImageDraw

    size = opt.display_size
    n_frames = rows[0][1].shape[0]
    cols = np.unique(np.linspace(0, n_frames - 1, min(opt.attention_frames, n_frames)).round().astype(int))
    row_h = size + _LABEL_PX
    sheet = Image.new("RGB", (size * len(cols), row_h * len(rows)), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for r, (label, frames) in enumerate(rows):
        draw.text((2, r * row_h + 1), label, fill=(255, 255, 255))
        for c, t in enumerate(cols):
            sheet.paste(_panel(frames[t], None, size), (c * size, r * row_h + _LABEL_PX))
    atomic_write(path, lambda f: sheet.save(f, format="PNG"))


def _write_gif(path: Path, rows: Sequence[tuple[str, np.ndarray]], opt: PredictOptions) -> None:
    """Every frame of the clips, the clips stacked vertically."""
    from PIL import Image

    size = opt.display_size
    n_frames = min(frames.shape[0] for _, frames in rows)
    images = []
    for t in range(n_frames):
        canvas = Image.new("RGB", (size, (size + _LABEL_PX) * len(rows)), (0, 0, 0))
        for r, (label, frames) in enumerate(rows):
            canvas.paste(_panel(frames[t], label, size), (0, r * (size + _LABEL_PX)))
        images.append(canvas)
    atomic_write(
        path,
        lambda f: images[0].save(
            f, format="GIF", save_all=True, append_images=images[1:], duration=opt.gif_frame_ms, loop=0
        ),
    )


__all__ = [
    "BUNDLE_FORMAT",
    "BundleError",
    "PredictOptions",
    "Predictor",
    "TaskHead",
    "make_bundle",
    "token_grid",
]
