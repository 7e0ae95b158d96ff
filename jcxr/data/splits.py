"""Patient-grouped splits, k-fold cross-validation and Sabottke & Spieler 2020's per-label
subsample.

Every function is deterministic from its seed and independent of the CSV's row order: patients
are sorted by ID before being shuffled, and images within a split are returned in sorted order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jcxr.data.table import DataError, Table

SPLIT_BY = ("patient", "image")


def _groups(table: Table, split_by: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique group keys, group index of every row)."""
    if split_by not in SPLIT_BY:
        raise DataError(f"split_by must be one of {SPLIT_BY}; got {split_by!r}")
    keys = table.patient_ids if split_by == "patient" else table.image_ids
    return np.unique(keys, return_inverse=True)


def _rng(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([seed, sum(map(ord, purpose))])


def _row_order(table: Table, rows: np.ndarray) -> np.ndarray:
    """``rows`` sorted by image ID, so results do not depend on the CSV's row order."""
    return rows[np.argsort(table.image_ids[rows], kind="stable")]


def grouped_split(
    table: Table,
    fractions: dict[str, float],
    *,
    seed: int = 0,
    split_by: str = "patient",
) -> dict[str, np.ndarray]:
    """Row indices per split, no patient in two splits (``split_by="image"`` only when asked).

    Patients are shuffled and dealt out in that order until each split holds its fraction of the
    images, so fractions are met in images, to within one patient's images.
    """
    total = sum(fractions.values())
    if not np.isclose(total, 1.0) or any(f < 0 for f in fractions.values()):
        raise DataError(f"split fractions must be >= 0 and sum to 1; got {fractions}")
    keys, group = _groups(table, split_by)
    sizes = np.bincount(group, minlength=keys.size)
    order = _rng(seed, "split").permutation(keys.size)
    boundaries = np.cumsum([fractions[name] for name in fractions]) * len(table)
    cumulative = np.cumsum(sizes[order]) - sizes[order] / 2  # a patient's midpoint in images
    which = np.searchsorted(boundaries, cumulative, side="right").clip(max=len(fractions) - 1)
    assignment = np.empty(keys.size, np.int64)
    assignment[order] = which
    row_split = assignment[group]
    return {
        name: _row_order(table, np.flatnonzero(row_split == k)) for k, name in enumerate(fractions)
    }


def kfold(table: Table, k: int, *, seed: int = 0, split_by: str = "patient") -> list[np.ndarray]:
    """k patient-grouped folds of row indices; every row in exactly one fold, sizes balanced."""
    if k < 2:
        raise DataError(f"k-fold cross-validation needs k >= 2; got {k}")
    keys, group = _groups(table, split_by)
    if keys.size < k:
        raise DataError(f"{keys.size} {split_by}s cannot fill {k} folds")
    sizes = np.bincount(group, minlength=keys.size)
    order = _rng(seed, "kfold").permutation(keys.size)
    load = np.zeros(k, np.int64)
    fold_of = np.empty(keys.size, np.int64)
    for patient in order[np.argsort(-sizes[order], kind="stable")]:  # largest first, greedy
        fold = int(np.argmin(load))
        fold_of[patient] = fold
        load[fold] += sizes[patient]
    row_fold = fold_of[group]
    return [_row_order(table, np.flatnonzero(row_fold == f)) for f in range(k)]


@dataclasses.dataclass(frozen=True)
class Subsample:
    """Sabottke & Spieler 2020's per-label subsample: all positives + random negatives up to
    ``size``."""

    label: str
    rows: np.ndarray  # row indices into the table, sorted by image ID
    positives: int
    negatives: int

    @property
    def size(self) -> int:
        return self.positives + self.negatives

    @property
    def positive_weight(self) -> float:
        """negatives / positives: the weight of the positive term in the BCE loss."""
        return self.negatives / self.positives


def positive_enriched_subsample(
    table: Table, label: str, *, size: int | None = 20_000, seed: int = 0
) -> Subsample:
    """All positives of ``label`` plus random negatives, ``size`` images in all.

    ``size=None`` keeps every labelled image. Rows whose label is excluded (NaN) are never drawn.
    """
    column = table.label(label)
    positive = np.flatnonzero(column == 1)
    negative = np.flatnonzero(column == 0)
    positive = positive[np.argsort(table.image_ids[positive], kind="stable")]
    negative = negative[np.argsort(table.image_ids[negative], kind="stable")]
    if positive.size == 0:
        raise DataError(f"label {label!r} has no positive image in {table.source}")
    if size is None:
        chosen = negative
    else:
        if size <= positive.size:
            raise DataError(
                f"subsample size {size} must exceed the {positive.size} positives of {label!r}"
            )
        n_neg = min(size - positive.size, negative.size)
        chosen = _rng(0 if seed is None else seed, f"subsample/{label}").choice(
            negative, n_neg, replace=False
        )
    rows = _row_order(table, np.concatenate([positive, chosen]))
    return Subsample(label=label, rows=rows, positives=positive.size, negatives=len(chosen))
