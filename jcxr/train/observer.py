"""The phantoms' reference observer in a sweep: scored on the compared images at every
resolution, beside the networks (:mod:`jcxr.data.phantom_observer`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jcxr.data import phantom_observer
from jcxr.data.label_data import LabelData
from jcxr.data.shards import read_pixels
from jcxr.results import Comparison
from jcxr.stats import delong


def reference_observer(config, shards: Path, data: LabelData, comp: Comparison) -> dict | None:
    """The observer's AUC, SD and 95% CI at each of ``comp``'s resolutions on ``comp``'s
    images, per image; None where there is none (real data, or a finding without one)."""
    if config.data.source != "phantom" or not phantom_observer.has_observer(comp.label):
        return None
    records = np.concatenate(data.folds) if comp.split == "oof" else data.splits[comp.split]
    out = {"observer": phantom_observer.DESCRIPTIONS[comp.label], "split": comp.split,
           "resolutions": list(comp.resolutions), "auc": [], "se": [], "ci": []}  # fmt: skip
    labels = data.labels[records]
    for resolution in comp.resolutions:
        scores = phantom_observer.scores(read_pixels(shards, resolution, records), comp.label)
        result = delong(labels, scores)  # AUC, its SD and the clipped 95% normal CI
        out["auc"].append(float(result.auc[0]))
        out["se"].append(float(result.se[0]))
        out["ci"].append([float(v) for v in result.ci[0]])
    return out
