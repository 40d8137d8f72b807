"""Writing ultrasound DICOM files (cine, still, Doppler): the synthetic world's MIMIC-IV-Echo layout and
test fixtures. The writer puts caller-given identifiers into files (synthetic data proves they never leak).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from echojepa.io.atomic import atomic_write
from echojepa.io.dicom import (
    PHOTOMETRICS,
    PYDICOM3,
    US_IMAGE_SOP_CLASS,
    US_MULTIFRAME_SOP_CLASS,
    UltrasoundRegion,
)


def _uid(seed: str | None, role: str) -> str:
    if seed is None:
        return generate_uid()
    return generate_uid(entropy_srcs=[seed, role])


def _frames_for(frames: np.ndarray, photometric: str) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] != 3) or arr.shape[0] == 0:
        raise ValueError(f"frames must be non-empty [T,H,W,3] or [T,H,W], got shape {arr.shape}")
    if photometric == "MONOCHROME2":
        if arr.ndim == 4:
            if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
                raise ValueError("MONOCHROME2 needs greyscale frames (equal channels)")
            arr = arr[..., 0]
    elif arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return np.ascontiguousarray(arr)


def _jpeg_frames(arr: np.ndarray, quality: int) -> list[bytes]:
    out = []
    for frame in arr:  # [H, W, 3]
        buf = io.BytesIO()
        # subsampling=1 is 4:2:2, as YBR_FULL_422 declares
        Image.fromarray(frame, mode="RGB").save(buf, format="JPEG", quality=quality, subsampling=1)
        out.append(buf.getvalue())
    return out


def _region_item(r: UltrasoundRegion) -> Dataset:
    item = Dataset()
    item.RegionSpatialFormat = int(r.spatial_format)
    item.RegionDataType = int(r.data_type)
    item.RegionFlags = 0
    item.RegionLocationMinX0 = int(r.x0)
    item.RegionLocationMinY0 = int(r.y0)
    item.RegionLocationMaxX1 = int(r.x1) - 1  # DICOM stores the inclusive last pixel
    item.RegionLocationMaxY1 = int(r.y1) - 1
    item.PhysicalUnitsXDirection = 3  # cm
    item.PhysicalUnitsYDirection = 3
    item.PhysicalDeltaX = float(r.physical_delta_x)
    item.PhysicalDeltaY = float(r.physical_delta_y)
    return item


def write_dicom(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float | None,
    *,
    photometric: str = "YBR_FULL_422",
    regions: list[UltrasoundRegion] | None = None,
    identifiers: dict[str, str] | None = None,
    kind: str = "cine",
    frame_time_tag: bool = True,
    cine_rate_tag: bool = False,
    uids_seed: str | None = None,
    jpeg_quality: int = 95,
) -> None:
    """Write frames [T,H,W,3] / [T,H,W] uint8 as an ultrasound DICOM.

    kind "cine": Ultrasound Multi-frame Image; "still": single-frame Ultrasound Image (T must be 1);
    "doppler": frames with a spectral region (a PW region over the whole frame unless `regions` given).
    photometric: MONOCHROME2 / RGB (uncompressed, Explicit VR Little Endian) or YBR_FULL_422 (JPEG
    Baseline, one Pillow-encoded 4:2:2 frame per fragment). `identifiers` (DICOM keywords -> values) are
    written as given. Output bytes are deterministic for the same inputs and `uids_seed`.
    """
    p = Path(path)
    if photometric not in PHOTOMETRICS:
        raise ValueError(f"{p}: photometric must be one of {PHOTOMETRICS}, got {photometric!r}")
    if kind not in ("cine", "still", "doppler"):
        raise ValueError(f"{p}: kind must be 'cine', 'still' or 'doppler', got {kind!r}")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"{p}: fps must be positive or None, got {fps}")
    arr = _frames_for(frames, photometric)
    n, rows, cols = arr.shape[:3]
    if kind == "still" and n != 1:
        raise ValueError(f"{p}: kind 'still' needs exactly one frame, got {n}")
    if kind == "doppler" and regions is None:
        regions = [UltrasoundRegion(0, 0, cols, rows, spatial_format=3, data_type=3)]
    multi = n > 1
    sop_class = US_MULTIFRAME_SOP_CLASS if multi else US_IMAGE_SOP_CLASS
    jpeg = photometric == "YBR_FULL_422"
    sop_uid = _uid(uids_seed, "sop")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = JPEGBaseline8Bit if jpeg else ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = _uid(uids_seed, "study")
    ds.SeriesInstanceUID = _uid(uids_seed, "series")
    ds.Modality = "US"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20000101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "000000"
    ds.Manufacturer = "EchoJEPA synthetic"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    for keyword, value in (identifiers or {}).items():
        if pydicom.datadict.tag_for_keyword(keyword) is None:
            raise ValueError(f"{p}: unknown DICOM keyword {keyword!r} in identifiers")
        setattr(ds, keyword, value)

    ds.SamplesPerPixel = 1 if photometric == "MONOCHROME2" else 3
    ds.PhotometricInterpretation = photometric
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if multi:
        ds.NumberOfFrames = n
    if fps is not None and frame_time_tag:
        ds.FrameTime = f"{1000.0 / fps:.10g}"
        if multi:
            ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    if fps is not None and cine_rate_tag:
        ds.CineRate = int(round(fps))
    if regions:
        ds.SequenceOfUltrasoundRegions = DicomSequence([_region_item(r) for r in regions])

    if jpeg:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.PixelData = encapsulate(_jpeg_frames(arr, jpeg_quality))
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        data = arr.tobytes()
        ds.PixelData = data + b"\x00" if len(data) % 2 else data
        ds["PixelData"].VR = "OB"

    if PYDICOM3:
        atomic_write(p, lambda f: ds.save_as(f, enforce_file_format=True))  # never half a file
    else:  # pragma: no cover - pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
        atomic_write(p, lambda f: ds.save_as(f, write_like_original=False))
