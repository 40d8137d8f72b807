"""Ultrasound DICOM: header info, decode (colour converted exactly once), region crop and fps rule; the
writer is ``echojepa.io.dicom_writer``.

Privacy: headers are parsed with `specific_tags`, so patient identifiers are never even decoded from a
file; nothing read here is logged except the file path, and `VideoInfo.meta` holds acquisition facts
only.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import JPEGBaseline8Bit

from echojepa.io.sector import estimate_sector_mask, mask_bbox, sample_indices
from echojepa.io.types import DecodedVideo, NotACineError, Region, VideoInfo, VideoReadError
from echojepa.io.video import validate_indices

log = logging.getLogger(__name__)

US_MULTIFRAME_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.6.1"
DEFAULT_FPS = 30.0
PHOTOMETRICS = ("MONOCHROME2", "RGB", "YBR_FULL_422")
_WARNED_DEFAULT_FPS: set[str] = set()
PYDICOM3 = int(pydicom.__version__.split(".")[0]) >= 3
_PIXEL_TAG_BYTES = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian

# Only these are ever parsed from a file: identifiers stay undecoded bytes.
_HEADER_TAGS = [
    "SOPClassUID",
    "Modality",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "FrameTime",
    "CineRate",
    "FrameIncrementPointer",
    "SequenceOfUltrasoundRegions",
]

_SPECTRAL_FORMATS = {3, 4}  # RegionSpatialFormat: 3 spectral, 4 wave form
_SPECTRAL_TYPES = {3, 4}  # RegionDataType: 3 PW spectral Doppler, 4 CW spectral Doppler
_IMAGE_TYPES = {1, 2}  # RegionDataType: 1 tissue, 2 colour flow (a 2-D image either way)


@dataclass
class UltrasoundRegion:
    """One item of SequenceOfUltrasoundRegions (0018,6011), as a half-open pixel box.

    x1/y1 are exclusive here (like `Region`); the file stores inclusive RegionLocationMaxX1/MaxY1.
    spatial_format: 1 = 2D, 2 = M-mode, 3 = spectral, 4 = wave form.
    data_type: 1 tissue, 2 colour flow, 3 PW spectral, 4 CW spectral, 0x0A ECG trace.
    physical_delta_x/y: cm per pixel.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    spatial_format: int = 1
    data_type: int = 1
    physical_delta_x: float = 0.03
    physical_delta_y: float = 0.03

    @property
    def area(self) -> int:
        return max(0, self.x1 - self.x0) * max(0, self.y1 - self.y0)

    @property
    def is_image(self) -> bool:
        return self.spatial_format == 1 and self.data_type in _IMAGE_TYPES

    @property
    def is_spectral(self) -> bool:
        return self.spatial_format in _SPECTRAL_FORMATS or self.data_type in _SPECTRAL_TYPES

    def as_region(self) -> Region:
        return Region(self.x0, self.y0, self.x1, self.y1)


# ----------------------------------------------------------------------------------------------- reading


def is_dicom(path: str | os.PathLike) -> bool:
    """True for a .dcm suffix or the DICM magic at byte 128."""
    p = Path(path)
    if p.suffix.lower() == ".dcm":
        return True
    try:
        with p.open("rb") as fp:
            fp.seek(128)
            return fp.read(4) == b"DICM"
    except OSError:
        return False


def _read_header(path: Path) -> tuple[Dataset, bool]:
    """Header (only `_HEADER_TAGS`) and whether the file goes on to hold PixelData."""
    if not path.exists():
        raise VideoReadError(str(path), "file not found")
    if path.stat().st_size == 0:
        raise VideoReadError(str(path), "empty file (0 bytes)")
    try:
        with path.open("rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
            has_pixels = fp.read(4) == _PIXEL_TAG_BYTES
    except pydicom.errors.InvalidDicomError as exc:
        raise VideoReadError(str(path), "not a DICOM file (no DICM preamble)") from exc
    except Exception as exc:  # pydicom raises many types on corrupt headers
        raise VideoReadError(str(path), f"corrupt DICOM header ({type(exc).__name__})") from exc
    return ds, has_pixels


def parse_regions(ds: Dataset) -> list[UltrasoundRegion]:
    """Regions of SequenceOfUltrasoundRegions, with half-open boxes."""
    out = []
    for item in ds.get("SequenceOfUltrasoundRegions", None) or []:
        try:
            out.append(
                UltrasoundRegion(
                    x0=int(item.RegionLocationMinX0),
                    y0=int(item.RegionLocationMinY0),
                    x1=int(item.RegionLocationMaxX1) + 1,
                    y1=int(item.RegionLocationMaxY1) + 1,
                    spatial_format=int(item.get("RegionSpatialFormat", 0) or 0),
                    data_type=int(item.get("RegionDataType", 0) or 0),
                    physical_delta_x=float(item.get("PhysicalDeltaX", 0.0) or 0.0),
                    physical_delta_y=float(item.get("PhysicalDeltaY", 0.0) or 0.0),
                )
            )
        except (AttributeError, TypeError, ValueError):
            continue  # an item without a location cannot crop anything
    return out


def dicom_fps(ds: Dataset, path: str) -> tuple[float, str]:
    """fps = 1000 / FrameTime, else CineRate, else DEFAULT_FPS (with a warning naming the file)."""
    frame_time = _positive(ds.get("FrameTime", None))
    if frame_time is not None:
        # FrameTime is a decimal string of limited precision ("16.66666667" for 60 fps): keep fps to
        # 1e-3, the precision the tag can carry, instead of printing float noise.
        return round(1000.0 / frame_time, 3), "FrameTime"
    cine_rate = _positive(ds.get("CineRate", None))
    if cine_rate is not None:
        return cine_rate, "CineRate"
    if path not in _WARNED_DEFAULT_FPS:  # once per file: every clip read would repeat it
        _WARNED_DEFAULT_FPS.add(path)
        log.warning("%s: no FrameTime or CineRate; assuming %.1f fps", path, DEFAULT_FPS)
    return DEFAULT_FPS, "default"


def _positive(value: object) -> float | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


@dataclass
class _Layout:
    """What the header says, before any pixel is decoded."""

    info: VideoInfo
    source_hw: tuple[int, int]
    crop: Region | None  # region crop from the header (None: estimate or none)
    estimate: bool  # estimate the fan mask from the cine (no usable region)


def _layout(path: Path) -> _Layout:
    ds, has_pixels = _read_header(path)
    if not has_pixels:
        raise VideoReadError(str(path), "no PixelData in file")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        photometric = str(ds.PhotometricInterpretation).strip().upper()
    except (AttributeError, TypeError, ValueError) as exc:
        raise VideoReadError(str(path), f"image pixel module incomplete ({type(exc).__name__})") from exc
    if rows <= 0 or cols <= 0:
        raise VideoReadError(str(path), f"invalid frame size {cols}x{rows}")
    if frames <= 0:
        raise VideoReadError(str(path), "zero frames")
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422"):
        raise VideoReadError(str(path), f"unsupported PhotometricInterpretation {photometric}")
    if int(ds.get("PixelRepresentation", 0) or 0) != 0:
        raise VideoReadError(str(path), "signed pixel data is not supported")

    regions = [_clip(r, cols, rows) for r in parse_regions(ds)]
    regions = [r for r in regions if r.area > 0]
    images = sorted((r for r in regions if r.is_image), key=lambda r: r.area, reverse=True)
    spectral = sorted((r for r in regions if r.is_spectral), key=lambda r: r.area, reverse=True)
    # A Doppler page may carry a small 2-D reference image: the larger part decides.
    if spectral and (not images or spectral[0].area > images[0].area):
        kind = "doppler"
    elif frames == 1:
        kind = "still"
    else:
        kind = "cine"

    crop = images[0].as_region() if images and kind != "doppler" else None
    estimate = crop is None and kind == "cine"
    fps, fps_source = dicom_fps(ds, str(path))
    chosen = images[0] if crop is not None else (spectral[0] if spectral else None)
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    meta = {
        "photometric": photometric,
        "transfer_syntax": str(ts) if ts else None,
        "number_of_frames": frames,
        "source_height": rows,
        "source_width": cols,
        "physical_delta_x": chosen.physical_delta_x if chosen else None,
        "physical_delta_y": chosen.physical_delta_y if chosen else None,
        "bits_stored": int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8),
        "crop": "region" if crop is not None else ("estimated" if estimate else "none"),
    }
    height, width = (crop.height, crop.width) if crop is not None else (rows, cols)
    info = VideoInfo(
        path=str(path),
        format="dicom",
        kind=kind,
        frames=frames,
        fps=fps,
        height=height,
        width=width,
        region=crop,
        fps_source=fps_source,
        meta=meta,
    )
    return _Layout(info=info, source_hw=(rows, cols), crop=crop, estimate=estimate)


def _clip(r: UltrasoundRegion, cols: int, rows: int) -> UltrasoundRegion:
    return UltrasoundRegion(
        x0=max(0, r.x0),
        y0=max(0, r.y0),
        x1=min(cols, r.x1),
        y1=min(rows, r.y1),
        spatial_format=r.spatial_format,
        data_type=r.data_type,
        physical_delta_x=r.physical_delta_x,
        physical_delta_y=r.physical_delta_y,
    )


def _to_uint8_rgb(arr: np.ndarray, photometric: str, bits_stored: int, path: str) -> np.ndarray:
    """[T, H, W] or [T, H, W, 3] decoded pixels (already RGB for colour) -> [T, H, W, 3] uint8."""
    if arr.dtype != np.uint8:
        shift = max(0, bits_stored - 8)
        arr = np.clip(arr.astype(np.int64) >> shift, 0, 255).astype(np.uint8)
    if arr.ndim == 3:
        if photometric == "MONOCHROME1":
            arr = 255 - arr  # MONOCHROME1 shows the minimum as white
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise VideoReadError(path, f"unexpected decoded pixel shape {arr.shape}")
    return arr


def _decode_frames(path: Path, indices: np.ndarray, info: VideoInfo) -> np.ndarray:
    """Decode only `indices` of the file into [T, H_src, W_src, 3] uint8 RGB."""
    photometric = info.meta["photometric"]
    unique, inverse = np.unique(indices, return_inverse=True)
    try:
        if PYDICOM3:
            # pydicom 3 returns RGB for YBR (JPEG and native) by default: no conversion of our own.
            wanted = None if info.frames == 1 else [int(i) for i in unique]
            arr = np.stack(list(pydicom.pixels.iter_pixels(str(path), indices=wanted)))
        else:  # pragma: no cover - exercised only where pydicom 2.x is installed
            arr = _decode_frames_pydicom2(path, unique, info)
    except Exception as exc:  # decoders raise many types on truncated or corrupt pixel data
        raise VideoReadError(
            str(path), f"corrupt or truncated pixel data ({type(exc).__name__}: {exc})"[:300]
        ) from exc
    if arr.shape[0] != len(unique):
        raise VideoReadError(str(path), f"decoded {arr.shape[0]} frames, expected {len(unique)}")
    return _to_uint8_rgb(arr[inverse], photometric, int(info.meta["bits_stored"]), str(path))


def _decode_frames_pydicom2(path: Path, indices: np.ndarray, info: VideoInfo) -> np.ndarray:
    """pydicom 2.x: its handlers return YBR untouched (Pillow in draft YCbCr mode): convert once here."""
    from pydicom.pixel_data_handlers.util import convert_color_space

    tags = [*_HEADER_TAGS, "PixelData"]
    ds = pydicom.dcmread(str(path), specific_tags=tags)
    if ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit:
        ds.convert_pixel_data(handler_name="pillow")  # GDCM would convert to RGB itself
    arr = ds.pixel_array
    arr = arr[None] if info.frames == 1 else arr[np.asarray(indices)]
    photometric = info.meta["photometric"]
    if photometric.startswith("YBR"):
        arr = convert_color_space(arr, "YBR_FULL", "RGB", per_frame=True)
    return arr


@functools.lru_cache(maxsize=32)
def _estimated_mask(path: str, size: int, mtime_ns: int, crop: tuple[int, ...] | None) -> np.ndarray:
    """Fan mask from a fixed frame sample, cached per file version (it costs a partial decode)."""
    layout = _layout(Path(path))
    sample = _decode_frames(Path(path), sample_indices(layout.info.frames), layout.info)
    if crop is not None:
        x0, y0, x1, y1 = crop
        sample = sample[:, y0:y1, x0:x1]
    mask = estimate_sector_mask(sample)
    mask.setflags(write=False)
    return mask


def _mask_for(path: Path, crop: Region | None) -> np.ndarray:
    st = path.stat()
    mask = _estimated_mask(str(path), st.st_size, st.st_mtime_ns, tuple(crop.as_list()) if crop else None)
    if not mask.any():
        raise VideoReadError(str(path), "no image content found (every sampled frame is black)")
    return mask


def dicom_info(path: str | os.PathLike) -> VideoInfo:
    """What the DICOM holds; decodes only a small frame sample when the fan must be estimated."""
    p = Path(path)
    layout = _layout(p)
    info = layout.info
    if layout.estimate:
        box = mask_bbox(_mask_for(p, None))
        assert box is not None  # _mask_for raises on an empty mask
        info.region = Region(*box)
        info.height, info.width = info.region.height, info.region.width
    return info


def read_dicom(
    path: str | os.PathLike,
    frame_indices: Sequence[int] | None = None,
    *,
    allow_non_cine: bool = False,
) -> DecodedVideo:
    """Decode the requested frames of an ultrasound DICOM as RGB uint8, cropped, with a fan mask.

    Cine with a 2-D tissue region: cropped to the (largest) region; mask estimated inside it.
    Cine without one: fan mask estimated, frames cropped to its bounding box and zeroed outside it.
    Still / Doppler (only with allow_non_cine): region crop for stills, mask all True.
    """
    p = Path(path)
    layout = _layout(p)
    info = layout.info
    if info.kind != "cine" and not allow_non_cine:
        raise NotACineError(str(p), info.kind)
    indices = validate_indices(str(p), frame_indices, info.frames)
    frames = _decode_frames(p, indices, info)  # [T, H_src, W_src, 3]
    rows, cols = layout.source_hw
    if frames.shape[1:3] != (rows, cols):
        raise VideoReadError(str(p), f"decoded size {frames.shape[1:3]} differs from header {(rows, cols)}")

    if layout.crop is not None:
        c = layout.crop
        frames = frames[:, c.y0 : c.y1, c.x0 : c.x1]
        mask = _mask_for(p, c) if info.kind == "cine" else np.ones((c.height, c.width), dtype=bool)
    elif layout.estimate:
        full = _mask_for(p, None)
        x0, y0, x1, y1 = mask_bbox(full)  # type: ignore[misc]
        info.region = Region(x0, y0, x1, y1)
        info.height, info.width = y1 - y0, x1 - x0
        mask = full[y0:y1, x0:x1]
        frames = frames[:, y0:y1, x0:x1] * mask[None, :, :, None]
    else:
        mask = np.ones((rows, cols), dtype=bool)
    return DecodedVideo(
        frames=np.ascontiguousarray(frames, dtype=np.uint8),
        info=info,
        frame_indices=indices,
        mask=np.array(mask, dtype=bool),
    )
