"""The metadata every source produces: one row per image, labels as 1 / 0 / NaN (excluded)."""

from __future__ import annotations

import dataclasses

import numpy as np


class DataError(ValueError):
    """Bad input data: the message names the file, row or field, what was found and expected."""


@dataclasses.dataclass(frozen=True, eq=False)
class Table:
    """Metadata of a dataset, in the source's row order.

    ``labels[i, j]`` is 1 (finding present), 0 (absent) or NaN (excluded for that label, e.g. a
    CheXpert blank or an ignored uncertain mention).
    """

    source: str
    image_ids: np.ndarray  # (N,) str
    patient_ids: np.ndarray  # (N,) str
    label_names: tuple[str, ...]
    labels: np.ndarray  # (N, L) float32
    views: np.ndarray  # (N,) str, e.g. "PA", "AP"
    paths: np.ndarray  # (N,) str, image path relative to the dataset root
    csv_sha256: str = ""
    study_ids: np.ndarray | None = None  # (N,) str where images group into studies (CheXpert)
    # (N,) str: "train" or "test" where the source ships an official test set (NIH's
    # test_list.txt, CheXpert's valid.csv), "" for rows in neither; None where it has none.
    official_split: np.ndarray | None = None
    # (N,) float: mm per pixel of a prepared record at its resolution (read_index; NaN where the
    # source file gave no spacing, e.g. PNG)
    mm_per_pixel: np.ndarray | None = None

    def __len__(self) -> int:
        return self.image_ids.size

    @property
    def num_patients(self) -> int:
        return int(np.unique(self.patient_ids).size)

    def label(self, name: str) -> np.ndarray:
        """(N,) 1 / 0 / NaN column of one label."""
        if name not in self.label_names:
            raise DataError(f"{self.source}: unknown label {name!r}; labels are {self.label_names}")
        return self.labels[:, self.label_names.index(name)]

    def subset(self, rows: np.ndarray) -> Table:
        rows = np.asarray(rows)
        return dataclasses.replace(
            self,
            image_ids=self.image_ids[rows],
            patient_ids=self.patient_ids[rows],
            labels=self.labels[rows],
            views=self.views[rows],
            paths=self.paths[rows],
            study_ids=None if self.study_ids is None else self.study_ids[rows],
            official_split=None if self.official_split is None else self.official_split[rows],
            mm_per_pixel=None if self.mm_per_pixel is None else self.mm_per_pixel[rows],
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Per label: positives, and positives whose image has no other positive finding."""
        positive = self.labels == 1
        single = positive & (positive.sum(axis=1, keepdims=True) == 1)
        return {
            name: {
                "positives": int(positive[:, j].sum()),
                "single_finding": int(single[:, j].sum()),
            }
            for j, name in enumerate(self.label_names)
        }


NEGATIVES = ("absent", "normal")


def reader_options(source: str, defaults: dict, presets: dict, preset, given: dict) -> dict:
    """A report-labelled source's reading options: ``defaults``, then the ``preset``'s, then
    every argument the caller set (not None)."""
    if preset is not None and preset not in presets:
        raise DataError(f"unknown {source} preset {preset!r}; expected one of {list(presets)}")
    options = {**defaults, **presets.get(preset, {})}
    options.update({k: v for k, v in given.items() if v is not None})
    if options["negatives"] not in NEGATIVES:
        raise DataError(f"negatives must be one of {NEGATIVES}; got {options['negatives']!r}")
    return options


def finding_labels(findings: list, names: list[str], negatives: str) -> np.ndarray:
    """``[N, L]`` 1 / 0 / NaN from each image's set of findings (None: unlabelled, NaN
    everywhere): 1 where the set names the label; else 0, or with ``negatives="normal"`` 0 only
    for images labelled "No Finding" and NaN (excluded) for the rest."""
    column = {name: j for j, name in enumerate(names)}
    values = np.zeros((len(findings), len(names)), np.float32)
    for i, found in enumerate(findings):
        if found is None or (negatives == "normal" and "No Finding" not in found):
            values[i] = np.nan
        for finding in found or ():
            if finding in column:
                values[i, column[finding]] = 1.0
    return values
