"""DICOM radiographs to grey uint8, as a radiologist's viewer would show them (pydicom).

1. Stored values -> modality values (Rescale Slope / Intercept, or a Modality LUT).
2. The VOI transform the file carries: its VOI LUT Sequence, else its first Window Center /
   Width (DICOM PS3.3 C.11.2.1.2, linear), mapped onto 0-255. A file with neither is scaled by
   the range its Bits Stored allows (``2**BitsStored - 1``), not by its own extremes, so that
   exposure differences between images stay visible.
3. MONOCHROME1 (high values dark, e.g. most CR plates) is inverted, so that bone is bright in
   every image jcxr stores.

:func:`read` also returns the facts a prepared dataset keeps: the pixel spacing in mm (Pixel
Spacing, else Imager Pixel Spacing; None when neither is there or it is zero), the view
(View Position) and the photometric interpretation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jcxr.data.table import DataError

SUFFIXES = (".dcm", ".dicom")


def is_dicom(path: Path) -> bool:
    """By suffix, else by the ``DICM`` marker at byte 128 (files exported without one)."""
    if path.suffix.lower() in SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read(path: str | Path) -> tuple[np.ndarray, dict]:
    """``(grey [rows, cols] uint8, {"pixel_spacing", "view", "photometric"})``."""
    import pydicom
    from pydicom import pixels

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
        stored = ds.pixel_array
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except Exception as error:  # pydicom raises many kinds for a broken file
        raise DataError(f"{path}: cannot decode DICOM ({type(error).__name__}: {error})") from None
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if stored.ndim != 2 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(
            f"{path}: PhotometricInterpretation {photometric!r} with pixel shape {stored.shape}; "
            "expected one grey frame (MONOCHROME1 or MONOCHROME2)"
        )
    values = pixels.apply_modality_lut(stored, ds).astype(np.float64)
    if "VOILUTSequence" in ds:
        values = pixels.apply_voi_lut(values, ds, prefer_lut=True)
        low, high = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    else:  # windowing maps onto the modality values' range, which also scales an unwindowed file
        if "WindowCenter" in ds and "WindowWidth" in ds:
            values = pixels.apply_windowing(values, ds)
        low, high = _modality_range(ds)
    grey = np.clip((values - low) / max(high - low, 1e-12), 0, 1)
    if photometric == "MONOCHROME1":
        grey = 1.0 - grey
    return np.rint(grey * 255).astype(np.uint8), {
        "pixel_spacing": _spacing(ds),
        "view": str(ds.get("ViewPosition", "")).strip(),
        "photometric": photometric,
    }


def _modality_range(ds) -> tuple[float, float]:
    """The range of values the stored bits allow, after the modality transform (pydicom's
    windowing maps onto the same range)."""
    if ds.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        low, high = 0, 2**bits - 1
    slope = float(ds.get("RescaleSlope", 1))
    intercept = float(ds.get("RescaleIntercept", 0))
    ends = sorted((low * slope + intercept, high * slope + intercept))
    return ends[0], ends[1]


def _spacing(ds) -> float | None:
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(key)
        if value is not None and len(value) and float(value[0]) > 0:
            return float(value[0])
    return None
