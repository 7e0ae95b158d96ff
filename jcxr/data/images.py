"""Image files to one grey uint8 channel, square: what ``prepare`` stores.

PNG and JPEG through Pillow (RGB and RGBA converted to luminance; 16-bit grey windowed on its
own percentiles, :func:`window_16bit`), DICOM through pydicom (:mod:`jcxr.data.dicom`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from jcxr.data import dicom
from jcxr.data.table import DataError


def load_grey(path: Path, square: str = "crop") -> np.ndarray:
    """:func:`decode`, then square (centre crop or black pad)."""
    return to_square(decode(path), square)


def decode(path: Path) -> np.ndarray:
    """An image file as one grey uint8 channel, at its own size (:func:`decode_with_spacing`
    without the spacing)."""
    return decode_with_spacing(path)[0]


def decode_with_spacing(path: Path) -> tuple[np.ndarray, float | None]:
    """``(grey uint8 [rows, cols], mm per pixel or None)``: an image file as one grey channel at
    its own size, and its pixel spacing where the file records one (DICOM).

    RGB and RGBA files (some NIH PNGs) are converted to luminance. 16-bit files (PadChest's
    PNGs, which hold 12-16 bit values and no window) are windowed on their own 0.5th to 99.5th
    percentiles (:func:`window_16bit`). DICOM files go through :func:`jcxr.data.dicom.read`
    (modality and VOI transforms, MONOCHROME1 inverted).
    """
    if dicom.is_dicom(path):
        grey, facts = dicom.read(path)
        return grey, facts["pixel_spacing"]
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                return window_16bit(np.asarray(image)), None
            return np.asarray(image.convert("L")), None
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path}: cannot decode image ({error})") from None


WINDOW_PERCENTILES = (0.5, 99.5)


def window_16bit(values: np.ndarray) -> np.ndarray:
    """uint8 of a high-bit-depth image: its 0.5th percentile to 0, its 99.5th to 255, linear
    between and clipped (robust to a few saturated or dead pixels, whatever the bits used)."""
    values = np.asarray(values, np.float64)
    low, high = np.percentile(values, WINDOW_PERCENTILES)
    scaled = (values - low) / max(high - low, 1e-12)
    return np.rint(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def to_square(grey: np.ndarray, square: str) -> np.ndarray:
    h, w = grey.shape
    if h == w:
        return grey
    if square == "crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return grey[top : top + side, left : left + side]
    side = max(h, w)
    out = np.zeros((side, side), np.uint8)
    out[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = grey
    return out
