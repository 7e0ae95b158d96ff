"""Lung-field cropping at prepare time: Cardona Cardenas et al. 2020's crop to the chest cavity.

Each image is cut to the bounding box of its lung mask, widened by ``margin`` (a fraction of the
box's width and height on every side, clipped to the image), before it is squared and resized.
The mask comes from a folder (:class:`MaskFolder`: one file per image, named by the image's stem,
PNG or JPEG in any letter case, at any size: the box is scaled to the image) or from any callable
``masker(image_id, grey) -> mask`` (e.g. a segmentation model's output). A mask pixel is lung
when it is at least half of white (JPEG masks are not exactly 0 and 255). A mask with no lung
is an error naming it: a segmentation that found no lung is worth knowing about.

The box, in the original image's pixels ``(x0, y0, x1, y1)``, and the original's size are kept in
every record's header, so that boxes drawn on the original (NIH's findings) can be moved into
the cropped image; ``verify`` checks them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from jcxr.data.table import DataError

MARGIN = 0.05
SUFFIXES = (".png", ".jpg", ".jpeg")
Masker = Callable[[str, np.ndarray], np.ndarray]


class MaskFolder:
    """``masker(image_id, grey)``: the mask file in ``folder`` named like the image."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: no such mask folder")
        # stem (lower case) -> file, read once: PNG or JPEG, any case
        self.files = {p.stem.lower(): p for p in sorted(self.folder.iterdir())
                      if p.suffix.lower() in SUFFIXES}  # fmt: skip

    def __call__(self, image_id: str, grey: np.ndarray) -> np.ndarray:
        path = self.files.get(Path(image_id).stem.lower())
        if path is None:
            raise DataError(
                f"{self.folder}: no lung mask for {image_id} (expected "
                f"{Path(image_id).stem}{{{','.join(SUFFIXES)}}})"
            )
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("L"))
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"{path}: cannot decode the mask ({error})") from None

    def __repr__(self) -> str:
        return f"MaskFolder({str(self.folder)!r})"


def lung_box(mask: np.ndarray, shape: tuple[int, int], margin: float = MARGIN,
             where: str = "the mask") -> tuple[int, int, int, int]:  # fmt: skip
    """``(x0, y0, x1, y1)`` (x1, y1 exclusive) in an image of ``shape`` (rows, cols): the
    mask's lung bounding box scaled to the image, widened by ``margin`` on every side."""
    mask = np.asarray(mask)
    lung = mask >= (128 if mask.dtype == np.uint8 else 0.5 * max(float(mask.max()), 1e-12))
    rows, cols = np.flatnonzero(lung.any(axis=1)), np.flatnonzero(lung.any(axis=0))
    if not rows.size or mask.max() <= 0:
        raise DataError(f"{where}: no lung in the mask (every pixel below half of white)")
    sy, sx = shape[0] / mask.shape[0], shape[1] / mask.shape[1]
    y0, y1 = rows[0] * sy, (rows[-1] + 1) * sy
    x0, x1 = cols[0] * sx, (cols[-1] + 1) * sx
    dy, dx = margin * (y1 - y0), margin * (x1 - x0)
    return (max(0, int(np.floor(x0 - dx))), max(0, int(np.floor(y0 - dy))),
            min(shape[1], int(np.ceil(x1 + dx))), min(shape[0], int(np.ceil(y1 + dy))))  # fmt: skip


def describe(masker: Masker | None, margin: float) -> dict | None:
    """What the manifest records of a crop (None without one)."""
    if masker is None:
        return None
    if isinstance(masker, MaskFolder):
        return {"masks": str(masker.folder.resolve()), "margin": margin}
    name = getattr(masker, "__qualname__", type(masker).__qualname__)
    return {"masker": f"{getattr(masker, '__module__', '')}.{name}", "margin": margin}


def check_box(box, size) -> str:
    """A problem with a recorded box (empty string if none)."""
    if not (isinstance(box, list) and len(box) == 4 and isinstance(size, list) and len(size) == 2):
        return f"crop {box!r} of size {size!r} is not [x0, y0, x1, y1] of [width, height]"
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]):
        return f"crop {box} is not inside the {size[0]} x {size[1]} image"
    return ""
