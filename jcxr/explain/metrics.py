"""Localisation of a map against boxes, per image, and their summary with a confidence interval.

Boxes are ``(x, y, w, h)`` in pixels of the map (NIH's BBox_List_2017.csv convention, rescaled
to the map's resolution by the caller with :func:`scale_boxes`); a pixel ``(row, col)`` is
inside a box when its centre ``(col + 0.5, row + 0.5)`` is. An image may have several boxes:
"inside" means inside any of them.

* pointing game (Zhang et al. 2018): is the map's maximum inside a box (ties: the first
  maximum in row-major order);
* energy: the share of the map's (non-negative) mass inside the boxes;
* IoU: of the map thresholded at ``threshold`` x its maximum with the boxes' union.

A map that is zero everywhere points nowhere: pointing game miss, energy 0, IoU 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

Box = tuple[float, float, float, float]


def scale_boxes(boxes: Sequence[Box], original: tuple[int, int], size: int, *,
                crop: Sequence[int] | None = None, square: str = "crop") -> list[Box]:  # fmt: skip
    """Boxes drawn on an ``original`` ``(width, height)`` image, moved into the ``size`` x
    ``size`` image ``prepare`` made of it: cut to ``crop`` ``(x0, y0, x1, y1)`` where it was
    (the lung crop, recorded in the record's header), squared as ``square`` says (a centre crop
    or black padding to a square), resized."""
    left, top = (crop[0], crop[1]) if crop is not None else (0, 0)
    width, height = (crop[2] - crop[0], crop[3] - crop[1]) if crop is not None else original
    if square == "crop":
        side = min(width, height)
        left, top = left + (width - side) // 2, top + (height - side) // 2
    else:
        side = max(width, height)
        left, top = left - (side - width) // 2, top - (side - height) // 2
    s = size / side
    return [((x - left) * s, (y - top) * s, w * s, h * s) for x, y, w, h in boxes]


def box_mask(boxes: Sequence[Box], shape: tuple[int, int]) -> np.ndarray:
    """``[rows, cols]`` bool: pixel centres inside any box."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    inside = np.zeros(shape, bool)
    for x, y, w, h in boxes:
        inside |= (cols >= x) & (cols < x + w) & (rows >= y) & (rows < y + h)
    return inside


def pointing_game(heat: np.ndarray, boxes: Sequence[Box]) -> bool:
    heat = np.asarray(heat, np.float64)
    if not np.any(heat > 0):
        return False
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return bool(box_mask(boxes, heat.shape)[row, col])


def energy(heat: np.ndarray, boxes: Sequence[Box]) -> float:
    heat = np.clip(np.asarray(heat, np.float64), 0, None)
    total = heat.sum()
    return float(heat[box_mask(boxes, heat.shape)].sum() / total) if total > 0 else 0.0


def iou(heat: np.ndarray, boxes: Sequence[Box], threshold: float = 0.5) -> float:
    heat = np.asarray(heat, np.float64)
    if not np.any(heat > 0):
        return 0.0
    hot = heat >= threshold * heat.max()
    inside = box_mask(boxes, heat.shape)
    union = np.sum(hot | inside)
    return float(np.sum(hot & inside) / union) if union else 0.0


def localisation(heat: np.ndarray, boxes: Sequence[Box], threshold: float = 0.5) -> dict:
    """All three scores of one map."""
    return {"pointing_game": float(pointing_game(heat, boxes)), "energy": energy(heat, boxes),
            "iou": iou(heat, boxes, threshold)}  # fmt: skip


def summarise(per_image: Sequence[dict], confidence: float = 0.95) -> dict:
    """Each score's mean over images with a confidence interval: Wilson's for the pointing
    game's hit rate, Student's t for energy and IoU. ``{"n", score: {"mean", "ci"}}``."""
    n = len(per_image)
    out: dict = {"n": n}
    if n == 0:
        return out
    z = stats.norm.ppf(0.5 + confidence / 2)
    hits = sum(p["pointing_game"] for p in per_image)
    rate = hits / n
    centre = (rate + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2))
    # at 0 (n) hits the lower (upper) bound is exactly 0 (1); the formula leaves rounding there
    low = 0.0 if hits == 0 else max(0.0, centre - half)
    high = 1.0 if hits == n else min(1.0, centre + half)
    out["pointing_game"] = {"mean": rate, "ci": [low, high]}
    for name in ("energy", "iou"):
        values = np.asarray([p[name] for p in per_image], np.float64)
        mean = float(values.mean())
        if n > 1:
            half = float(
                stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
            )
        else:
            half = float("nan")
        out[name] = {"mean": mean, "ci": [mean - half, mean + half]}
    return out
