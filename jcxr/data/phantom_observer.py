"""The phantoms' reference observers: hand-made readers that know what the generator draws
(:mod:`jcxr.data.phantom`), scored on the same test images as the networks at every
resolution. Their AUC is what the pixels allow a reader that knows the finding's shape; the
gap between a network's curve and the observer's is what training left on the table.

| finding      | observer                                                                   |
|--------------|----------------------------------------------------------------------------|
| Nodule       | matched filter: the image minus its local mean (Gaussian, half a nodule   |
|              | across), correlated with a nodule's profile at its size (10 px at 512 px   |
|              | scaled to the resolution); the score is the strongest response in the     |
|              | lung fields                                                                |
| Cardiomegaly | the width of the dense heart shadow: the fraction of pixels denser than   |
|              | the heart/lung midpoint in the band of rows through the heart              |
| Effusion     | the denser of the two lung bases: mean density of each base's window       |

Mass has none: the matched filter at a mass's size scored AUC 0.65-0.72 at 32-128 px
(200 phantoms), far below the networks (0.91-0.97), because a mass as dense as the chest
wall is confused with the lung edges; an observer that weak would read as a ceiling the
networks break. The measured figures are in docs/benchmarks.md. On real data there is no
observer: the slot stays empty.

The observers read the same uint8 pixels as the networks (the pre-resized shards).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from jcxr.data.phantom import NATIVE

NODULE_DIAMETER = 10.0  # px at NATIVE: the middle of the drawn 8-12 px
# lung fields and bases as the generator places them (image fractions; anatomy jitters by
# about 0.01-0.015 around these)
LUNG_CENTRES_X = (0.313, 0.687)
LUNG_CENTRE_Y, LUNG_HALF_WIDTH, LUNG_HALF_HEIGHT = 0.5, 0.155, 0.29
HEART_ROWS = (0.58, 0.68)
HEART_THRESHOLD = 0.42 * 255  # between lung (0.16) and heart (0.55) density
BASE_ROWS, BASE_HALF_WIDTH = (0.70, 0.78), 0.08

DESCRIPTIONS = {
    "Nodule": "matched filter at a nodule's size in the lung fields",
    "Cardiomegaly": "width of the dense heart shadow",
    "Effusion": "density of the denser lung base",
}


def has_observer(finding: str) -> bool:
    return finding in DESCRIPTIONS


def scores(pixels: np.ndarray, finding: str) -> np.ndarray:
    """The observer's score of each image ``[N, R, R]`` (uint8, as in the shards): higher =
    more likely to hold ``finding``."""
    if not has_observer(finding):
        raise ValueError(
            f"no reference observer for {finding!r}; phantom observers: {list(DESCRIPTIONS)}"
        )
    read = {"Nodule": _nodule, "Cardiomegaly": _cardiomegaly, "Effusion": _effusion}[finding]
    return np.asarray([read(image.astype(np.float32)) for image in pixels], np.float64)


def _lung_fields(size: int) -> np.ndarray:
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    fields = np.zeros((size, size), bool)
    for cx in LUNG_CENTRES_X:
        fields |= ((x - cx) / LUNG_HALF_WIDTH) ** 2 + (
            (y - LUNG_CENTRE_Y) / LUNG_HALF_HEIGHT
        ) ** 2 <= 1
    return fields


def _nodule(image: np.ndarray) -> float:
    size = image.shape[0]
    diameter = NODULE_DIAMETER * size / NATIVE
    residual = image - ndimage.gaussian_filter(image, 0.5 * diameter)
    radius = int(diameter / 2 * 1.1)
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    # the drawn profile: contrast * clip(1.2 - (r / radius) ** 2, 0, 1)
    profile = np.clip(1.2 - (yy**2 + xx**2) / max(diameter / 2, 0.5) ** 2, 0, 1)
    response = ndimage.correlate(residual, profile / profile.sum())
    return float(response[_lung_fields(size)].max())


def _cardiomegaly(image: np.ndarray) -> float:
    size = image.shape[0]
    band = image[int(HEART_ROWS[0] * size) : int(HEART_ROWS[1] * size) + 1]
    return float(np.mean(band > HEART_THRESHOLD))


def _effusion(image: np.ndarray) -> float:
    size = image.shape[0]
    rows = slice(int(BASE_ROWS[0] * size), int(BASE_ROWS[1] * size) + 1)
    bases = [
        image[rows, int((cx - BASE_HALF_WIDTH) * size) : int((cx + BASE_HALF_WIDTH) * size) + 1]
        for cx in LUNG_CENTRES_X
    ]
    return float(max(base.mean() for base in bases))
