"""Frozen features extracted from a dataset, batch by batch, in item order: a stream the feature cache
writes without holding the entry in memory (``stream_features``), or all of it in memory
(``extract_features``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from echojepa.data.clips import sample_clip_indices
from echojepa.data.torchdata import VideoClipDataset, collate_clips, worker_init

IndexRow = dict[str, Any]


POOLING = ("tokens", "mean")


@dataclass
class FeatureStream:
    """Features produced batch by batch, so an entry never has to fit in memory: ``chunks`` yields
    (features [b, S_b <= max_clips, N, D], rows) in item order; the writer pads S to ``max_clips``."""

    n_items: int
    max_clips: int
    chunks: Iterable[tuple[np.ndarray, list[IndexRow]]]


def max_clips(dataset: VideoClipDataset) -> int:
    """Most clips any item yields: the segment count, or in mode "all" the longest video's window count
    (index arithmetic on probed frame counts, nothing is decoded)."""
    if dataset.mode != "all":
        return dataset.spec.segments
    most = 1
    for i in range(len(dataset)):
        frames, fps = dataset.frame_info(i)
        most = max(most, len(sample_clip_indices(frames, fps, dataset.spec, None, "all")))
    return most


def _row(dataset: VideoClipDataset, index: int, num_clips: int) -> IndexRow:
    r = dataset.records[index]
    return {
        "record": index,
        "path": str(r.path),
        "patient": r.patient,
        "study": r.study,
        "view": r.view,
        "labels": dict(r.labels),
        "num_clips": int(num_clips),
    }


def _to_float16(x: Tensor, what: str) -> np.ndarray:
    with np.errstate(over="ignore"):  # overflow is detected (and refused) just below
        out = x.detach().float().cpu().numpy().astype(np.float16)
    if not np.isfinite(out).all():
        raise ValueError(f"{what}: features are not finite in float16 (overflow or NaN from the backbone)")
    return out


def stream_features(
    backbone: torch.nn.Module,
    dataset: VideoClipDataset,
    batch_size: int,
    device: str | torch.device = "cpu",
    progress: bool = True,
    aug_view: int | None = None,
    pool: str = "tokens",
    num_workers: int = 0,
    autocast_dtype: torch.dtype | None = None,
) -> FeatureStream:
    """Run ``backbone`` over every item of ``dataset`` (in order), ``batch_size`` items per step.

    ``aug_view`` selects the dataset epoch whose randomness is used (None: the dataset's own epoch).
    ``pool="mean"`` keeps one mean-pooled token per clip instead of all tokens.
    """
    if pool not in POOLING:
        raise ValueError(f"pool must be one of {POOLING}, got {pool!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    epoch = dataset.epoch if aug_view is None else int(aug_view)
    n, s_max = len(dataset), max_clips(dataset)
    name = getattr(backbone, "name", type(backbone).__name__)

    def chunks() -> Iterator[tuple[np.ndarray, list[IndexRow]]]:
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=[(i, epoch) for i in range(n)],
            collate_fn=collate_clips,
            num_workers=num_workers,
            worker_init_fn=worker_init if num_workers else None,
        )
        backbone.to(device).eval()
        bar = _progress(progress)
        with bar:
            task = bar.add_task(f"features {name}", total=n)
            for batch in loader:
                video, present = batch["video"], batch["clip_mask"]  # [B, S, C, T, H, W], [B, S]
                clips = video[present].to(device, non_blocking=True)  # [sum S_b, C, T, H, W]
                with (
                    torch.no_grad(),
                    torch.autocast(
                        torch.device(device).type, dtype=autocast_dtype, enabled=autocast_dtype is not None
                    ),
                ):
                    tokens = backbone(clips)  # [sum S_b, N, D]
                if pool == "mean":
                    tokens = tokens.mean(dim=1, keepdim=True)  # [sum S_b, 1, D]
                out = tokens.new_zeros((*present.shape, *tokens.shape[1:]), dtype=torch.float32)
                out[present.to(tokens.device)] = tokens.float()  # [B, S, N, D]
                rows = [_row(dataset, int(i), int(c)) for i, c in zip(batch["index"], batch["num_clips"])]
                yield _to_float16(out, f"backbone {name}, items {rows[0]['path']}..."), rows
                bar.advance(task, len(rows))

    return FeatureStream(n_items=n, max_clips=s_max, chunks=chunks())


def extract_features(
    backbone: torch.nn.Module,
    dataset: VideoClipDataset,
    batch_size: int,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **kwargs: Any,
) -> tuple[np.ndarray, list[IndexRow]]:
    """All features in memory: float16 [n_items, S, N, D] and one index row per item (see
    ``stream_features`` for the options). For big runs pass a stream to ``FeatureCache.get_or_compute``."""
    stream = stream_features(backbone, dataset, batch_size, device, progress, **kwargs)
    feats: list[np.ndarray] = []
    rows: list[IndexRow] = []
    for chunk, chunk_rows in stream.chunks:
        pad = stream.max_clips - chunk.shape[1]
        feats.append(np.pad(chunk, [(0, 0), (0, pad), (0, 0), (0, 0)]) if pad else chunk)
        rows.extend(chunk_rows)
    if not feats:
        raise ValueError("extract_features: the dataset is empty")
    return np.concatenate(feats), rows


def _progress(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )
