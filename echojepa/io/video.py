"""Container video (AVI/MP4/MOV/MKV) via PyAV: header info, partial decode with seeking, deterministic write.

Frame `i` of a file is the frame whose presentation time is `start + i / fps`; indices are derived
from timestamps so that a seek followed by a forward decode returns exactly what a full decode would.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from echojepa.io.atomic import atomic_write
from echojepa.io.types import DecodedVideo, NotACineError, VideoInfo, VideoReadError

CONTAINER_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv")

# Codec settings per suffix: (codec, pixel format). MJPG in full-range 4:4:4 keeps greyscale and colour
# round trips close; H.264 needs yuv420p for broad player support.
_WRITE_CODECS = {".avi": ("mjpeg", "yuvj444p"), ".mp4": ("libx264", "yuv420p")}
# FFmpeg muxer names that differ from the file suffix (the others are the suffix itself)
_MUXERS = {".mkv": "matroska", ".m4v": "mp4"}


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoReadError(str(path), "file not found")
    if path.stat().st_size == 0:
        raise VideoReadError(str(path), "empty file (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoReadError(str(path), f"cannot open container: {exc}") from exc


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoReadError(str(path), "no video stream in container")
    stream = container.streams.video[0]
    # One decode thread: DataLoader workers already provide the parallelism.
    stream.codec_context.thread_count = 1
    return stream


def _stream_fps(stream: av.video.stream.VideoStream, path: Path) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise VideoReadError(str(path), "container states no frame rate")
    return Fraction(rate.numerator, rate.denominator)


def _count_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    # Demux only (no decode): every non-empty packet of a video stream carries one frame.
    count = 0
    for packet in container.demux(stream):
        if packet.size and packet.size > 0:
            count += 1
    return count


def container_info(path: str | os.PathLike) -> VideoInfo:
    """Container metadata of a video file; exact frame count without decoding."""
    p = Path(path)
    container = _open(p)
    try:
        stream = _video_stream(container, p)
        fps = _stream_fps(stream, p)
        try:
            frames = int(stream.frames or 0)
            if frames <= 0:
                frames = _count_packets(container, stream)
        except av.error.FFmpegError as exc:
            raise VideoReadError(str(p), f"corrupt data while counting frames: {exc}") from exc
        height = int(stream.codec_context.height)
        width = int(stream.codec_context.width)
        fmt = p.suffix.lower().lstrip(".") or container.format.name
        meta = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt}
    finally:
        container.close()
    if frames <= 0:
        raise VideoReadError(str(p), "zero frames")
    if height <= 0 or width <= 0:
        raise VideoReadError(str(p), f"invalid frame size {width}x{height}")
    kind = "still" if frames == 1 else "cine"
    return VideoInfo(
        path=str(p),
        format=fmt,
        kind=kind,
        frames=frames,
        fps=float(fps),
        height=height,
        width=width,
        region=None,
        fps_source="container",
        meta=meta,
    )


def validate_indices(path: str, indices: Sequence[int] | None, frames: int) -> np.ndarray:
    """Requested indices as an int64 array (all frames when None); out-of-range -> VideoReadError."""
    if indices is None:
        return np.arange(frames, dtype=np.int64)
    raw = np.asarray(indices)
    if raw.ndim != 1 or raw.size == 0:
        raise VideoReadError(path, "frame_indices must be a non-empty 1-D sequence")
    if raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.all(raw == np.round(raw))):
        raise VideoReadError(path, f"frame_indices must be integers, got dtype {raw.dtype}")
    arr = raw.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= frames)]
    if bad.size:
        raise VideoReadError(path, f"frame indices {bad[:5].tolist()} out of range [0, {frames})")
    return arr


def _decode_range(path: Path, wanted: set[int], first: int, last: int, seek: bool) -> dict[int, np.ndarray]:
    """Decode frames first..last (inclusive), keeping those in `wanted`, keyed by frame index."""
    container = _open(path)
    out: dict[int, np.ndarray] = {}
    try:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream, path)  # exact rational: a float rate drifts on long videos
        tb = stream.time_base
        start = stream.start_time or 0
        # Frame index <-> pts: idx = (pts - start) * time_base * fps
        if seek and first > 0:
            target = start + int(Fraction(first) / fps / tb)
            container.seek(target, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                raise VideoReadError(str(path), "decoded frame without timestamp")
            idx = round((frame.pts - start) * tb * fps)
            if seek and not out and idx > first:
                # The seek landed after the first wanted frame (imprecise index): caller restarts.
                raise _SeekOvershoot()
            if idx in wanted:
                out[idx] = frame.to_ndarray(format="rgb24")  # [H, W, 3]
            if idx >= last:
                break
    except av.error.FFmpegError as exc:
        raise VideoReadError(str(path), f"corrupt or truncated data: {exc}") from exc
    finally:
        container.close()
    return out


class _SeekOvershoot(Exception):
    pass


def read_container(
    path: str | os.PathLike,
    frame_indices: Sequence[int] | None = None,
    *,
    allow_non_cine: bool = False,
    info: VideoInfo | None = None,
) -> DecodedVideo:
    """Decode only the requested frames of a container video (seek to the keyframe before the first)."""
    p = Path(path)
    info = info or container_info(p)
    if info.kind != "cine" and not allow_non_cine:
        raise NotACineError(str(p), info.kind)
    indices = validate_indices(str(p), frame_indices, info.frames)
    wanted = set(indices.tolist())
    first, last = int(indices.min()), int(indices.max())
    try:
        decoded = _decode_range(p, wanted, first, last, seek=True)
    except _SeekOvershoot:
        decoded = _decode_range(p, wanted, first, last, seek=False)
    missing = sorted(wanted - decoded.keys())
    if missing:
        raise VideoReadError(
            str(p), f"truncated or corrupt: frames {missing[:5]} (of {len(missing)} missing) not decodable"
        )
    frames = np.stack([decoded[i] for i in indices.tolist()])  # [T, H, W, 3]
    return DecodedVideo(frames=frames, info=info, frame_indices=indices)


def _as_rgb_frames(frames: np.ndarray) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"frames must be [T,H,W,3] or [T,H,W], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("frames must hold at least one frame")
    return np.ascontiguousarray(arr)


def quality_to_codec_options(codec: str, quality: int) -> dict[str, str]:
    """Map quality 1..100 (higher = better) to the codec's own scale."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    loss = (100 - quality) / 99.0  # 0 = best, 1 = worst
    if codec == "mjpeg":
        q = str(1 + round(loss * 30))  # JPEG qscale 1..31
        return {"qmin": q, "qmax": q}
    if codec in ("libx264", "h264"):
        # mbtree reads state that differs between runs in this x264 build: off for byte-identical output.
        return {"crf": str(round(loss * 51)), "threads": "1", "x264-params": "mbtree=0"}
    return {}


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    *,
    codec: str | None = None,
    quality: int = 95,
    keyframe_interval: int | None = None,
) -> None:
    """Write uint8 frames [T,H,W,3] or [T,H,W]: .avi -> MJPG, .mp4 -> H.264 yuv420p.

    `quality` is 1..100 (higher = better), mapped to JPEG qscale (MJPG) or CRF (H.264). Output bytes are
    deterministic for the same input (one encoder thread, no wall-clock metadata). `keyframe_interval`
    (H.264 GOP length; MJPG frames are all keyframes) trades file size for cheaper seeks.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in _WRITE_CODECS and codec is None:
        raise ValueError(f"{p}: unsupported output suffix {suffix!r} (use .avi or .mp4, or pass codec)")
    default_codec, pix_fmt = _WRITE_CODECS.get(suffix, ("libx264", "yuv420p"))
    codec = codec or default_codec
    if codec == "mjpeg":
        pix_fmt = "yuvj444p"
    if fps is None or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"{p}: fps must be a positive number, got {fps}")
    arr = _as_rgb_frames(frames)
    _, height, width, _ = arr.shape
    if pix_fmt == "yuv420p" and (height % 2 or width % 2):
        raise ValueError(f"{p}: {codec} with yuv420p needs even height and width, got {height}x{width}")
    rate = Fraction(fps).limit_denominator(10000)
    options = quality_to_codec_options(codec, quality)
    if keyframe_interval is not None:
        if keyframe_interval < 1:
            raise ValueError(f"{p}: keyframe_interval must be >= 1, got {keyframe_interval}")
        options["g"] = str(keyframe_interval)

    def encode(f) -> None:
        # the temp file's name says nothing of the container: name the muxer from the target's suffix
        container = av.open(f, mode="w", format=_MUXERS.get(suffix, suffix.lstrip(".")))
        try:
            stream = container.add_stream(codec, rate=rate)
            stream.width = width
            stream.height = height
            stream.pix_fmt = pix_fmt
            stream.codec_context.thread_count = 1
            stream.codec_context.time_base = 1 / rate
            stream.options = options
            for i, img in enumerate(arr):
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = i
                vf.time_base = 1 / rate
                for packet in stream.encode(vf):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()

    atomic_write(p, encode)  # a reader never sees half a video, a failed write leaves no file
