"""Per-file prediction: a frozen backbone plus each task's chosen probe head, ``predict_file(path)``.

Decode through ``echojepa.io.read_video`` (DICOM region crop and fps rules; AVI/MP4), cut each task's
clips (its protocol's sampling: centre clip(s), or every window averaged with ``clip_mode="all"``),
run the frozen backbone once per distinct clip, then each task's chosen probe head. LVEF is reported
only when the view probe's top class is A4C (``gates``): an EF read off a PLAX clip is not an EF.
Stills, Doppler spectra and undecodable files become ``scorable: false`` with the reason; the other
files still get results. Results carry the path the user gave, acquisition facts (frames, fps, kind,
region) and predictions, never DICOM patient identifiers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from echojepa.data.clips import sample_clip_indices
from echojepa.data.transforms import split_normalize, to_tensor_video
from echojepa.io import NotACineError, VideoReadError, read_video, video_info
from echojepa.predict.bundle import BundleError, TaskHead, check_required_tasks, load_bundle
from echojepa.predict.drawing import attention_rows, write_gif, write_strip
from echojepa.predict.options import PredictOptions
from echojepa.probe.backbone_base import Backbone
from echojepa.probe.heads import AttentiveProbe
from echojepa.probe.taskdata import all_clip_groups

__all__ = ["NON_CINE_REASONS", "InferenceSession"]

NON_CINE_REASONS = {"still": "still image", "doppler": "Doppler spectrum"}


def _unscorable(file: str, reason: str) -> dict[str, Any]:
    return {"file": file, "scorable": False, "reason": reason}


class InferenceSession:
    """A frozen backbone plus each task's chosen probe head: ``predict_file(path) -> dict``.

    (Not to be confused with ``echojepa.models.Predictor``, the JEPA predictor network.)"""

    def __init__(
        self,
        backbone: Backbone,
        heads: Mapping[str, TaskHead],
        options: PredictOptions | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        check_required_tasks(heads, "InferenceSession")
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
    ) -> InferenceSession:
        """Rebuild backbone and chosen probe heads from a bundle; refuses anything missing or mismatched.

        Raises FileNotFoundError for a missing bundle and BundleError (one line naming the file and the
        reason) for anything else wrong with it (see ``echojepa.predict.bundle.load_bundle``)."""
        backbone, heads = load_bundle(path)
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
            info = video_info(path)
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
        grid = self.backbone.token_grid(shape)
        if grid is None or int(np.prod(grid)) != n:
            reason = f"backbone kind {self.backbone.kind!r} gives {n} tokens per clip, not a token grid"
            return {"png": None, "gif": None, "reason": reason}
        rows = attention_rows(maps, grid, shape, result, self.options)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = self._unique_stem(Path(shown).stem)
        png, gif = out_dir / f"{stem}_attention.png", out_dir / f"{stem}_attention.gif"
        write_strip(png, rows, self.options)
        write_gif(gif, rows, self.options)
        return {"png": str(png), "gif": str(gif), "grid": list(grid), "tasks": list(maps)}

    def _unique_stem(self, stem: str) -> str:
        # two inputs with one stem (a/x.avi, b/x.dcm) must not overwrite each other's maps
        k = self._names_used.get(stem, 0)
        self._names_used[stem] = k + 1
        return stem if k == 0 else f"{stem}_{k + 1}"


class _ClipStore:
    """The decoded frames of one file; tokens per distinct clip computed once, in batches."""

    def __init__(self, video: Any, session: InferenceSession) -> None:
        self.video = video
        self.p = session
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
