"""One label's task on a set of shards: its records per split and its loss weight.

Splits depend on the shard index and the split seed only, never on the resolution, so every
resolution of a label is trained and evaluated on the same images.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jcxr.data import splits
from jcxr.data.shards import read_index, read_manifest
from jcxr.data.table import DataError

TEST_SPLITS = ("random", "official")


@dataclasses.dataclass(frozen=True)
class LabelData:
    """One label's records (indices into the shard index) per split, and its loss weights."""

    label: str
    labels: np.ndarray  # (N,) float32 over every record of the shards; NaN = excluded
    splits: dict[str, np.ndarray]
    positive_weight: float
    # (N,) study of every record where evaluation is per study (max over its views), else None
    studies: np.ndarray | None = None
    # (N,) patient and (where the source has them) study of every record: the clusters a
    # comparison may count as its independent units
    patient_ids: np.ndarray | None = None
    study_ids: np.ndarray | None = None
    # k-fold cross-validation: the records of each fold (patient-grouped, together every
    # record of ``splits["train"]`` and ``splits["val"]``); () for a hold-out split
    folds: tuple[np.ndarray, ...] = ()
    subsampled: bool = False  # the loss weight is the subsample's, not the training split's

    def describe(self) -> str:
        """One line: split sizes and the positive weight (and the folds' sizes)."""
        sizes = " / ".join(f"{len(rows)} {name}" for name, rows in self.splits.items())
        if self.folds:
            sizes += f" ({len(self.folds)} folds of {', '.join(str(len(f)) for f in self.folds)})"
        return f"{self.label}: {sizes} images, positive weight {self.positive_weight:.3f}"

    def fold(self, k: int) -> LabelData:
        """Fold ``k``'s task: validate on fold k, train on the other folds, the same test set;
        the loss weight is that training part's (or the subsample's)."""
        if not 0 <= k < len(self.folds):
            raise ValueError(f"fold {k} of a task with {len(self.folds)} folds")
        train = np.sort(np.concatenate([f for j, f in enumerate(self.folds) if j != k]))
        parts = {"train": train, "val": self.folds[k]}
        if "test" in self.splits:
            parts["test"] = self.splits["test"]
        _check_both_classes(self.label, self.labels, parts, f" of fold {k}")
        weight = self.positive_weight if self.subsampled else _weight(self.labels[train])
        return dataclasses.replace(self, splits=parts, positive_weight=weight, folds=())


def label_data(
    shards: str | Path,
    label: str,
    *,
    train_fraction: float,
    val_fraction: float,
    test_split: str = "random",
    subsample_size: int = 0,
    split_seed: int = 0,
    split_by: str = "patient",
    study_level: bool = False,
    folds: int = 0,
) -> LabelData:
    """Patient-grouped splits of ``label`` over the records of ``shards``.

    ``test_split="random"``: train / val / test in the ratio train_fraction : val_fraction :
    the rest (no test set when the two sum to 1). ``"official"``: the source's own test set
    (NIH's test_list.txt, CheXpert's valid.csv), train and val splitting the rest in the ratio
    train_fraction : val_fraction. ``subsample_size`` > 0: Sabottke & Spieler 2020's
    positive-enriched subsample (every positive, negatives up to that size), whose loss weight
    is negatives / positives of the subsample; otherwise of the training split.
    ``study_level``: score a study by the max over its views (needs study IDs: CheXpert).
    ``folds`` = K >= 2: k-fold cross-validation; train and validation together are cut into
    K patient-grouped folds (:func:`splits.kfold`, same seed), the test set as above
    (:meth:`LabelData.fold` gives each fold's task).
    """
    if test_split not in TEST_SPLITS:
        raise DataError(f"test_split = {test_split!r}; expected one of {list(TEST_SPLITS)}")
    table = read_index(shards, read_manifest(shards)["resolutions"][0])
    column = table.label(label)
    labelled = ~np.isnan(column)
    test = None
    if test_split == "official":
        if table.official_split is None:
            raise DataError(
                f"test_split = 'official', but the {table.source} shards in {shards} have no "
                "official test set (NIH: test_list.txt and train_val_list.txt next to the CSV; "
                "CheXpert: valid.csv); prepare them from a complete copy or use 'random'"
            )
        test = np.flatnonzero(labelled & (table.official_split == "test"))
        pool = np.flatnonzero(labelled & (table.official_split == "train"))
    else:
        pool = np.flatnonzero(labelled)
    fractions = {"train": train_fraction, "val": val_fraction}
    if test is None and 1.0 - train_fraction - val_fraction > 1e-9:
        fractions["test"] = 1.0 - train_fraction - val_fraction
    if subsample_size:
        sub = splits.positive_enriched_subsample(
            table.subset(pool), label, size=subsample_size, seed=split_seed
        )
        rows, weight = pool[sub.rows], sub.positive_weight
    else:
        rows, weight = pool, None
    if test is not None:
        total = sum(fractions.values())
        fractions = {name: f / total for name, f in fractions.items()}
    parts = splits.grouped_split(table.subset(rows), fractions, seed=split_seed, split_by=split_by)
    parts = {name: rows[idx] for name, idx in parts.items()}
    if test is not None:
        parts["test"] = test
    _check_both_classes(label, column, parts)
    fold_rows = ()
    if folds:
        pool = np.sort(np.concatenate([parts["train"], parts["val"]]))
        cut = splits.kfold(table.subset(pool), folds, seed=split_seed, split_by=split_by)
        fold_rows = tuple(pool[idx] for idx in cut)
    subsampled = weight is not None
    if weight is None:
        weight = _weight(column[parts["train"]])
    if study_level and table.study_ids is None:
        raise DataError(
            f"study_level = True, but the {table.source} shards in {shards} have no study IDs "
            "(only CheXpert has studies)"
        )
    data = LabelData(
        label=label,
        labels=column.astype(np.float32),
        splits=parts,
        positive_weight=float(weight),
        studies=table.study_ids if study_level else None,
        patient_ids=table.patient_ids,
        study_ids=table.study_ids,
        folds=fold_rows,
        subsampled=subsampled,
    )
    for k in range(len(fold_rows)):  # every fold's task has both classes, before anything trains
        data.fold(k)
    return data


def _weight(train_labels: np.ndarray) -> float:
    """negatives / positives of a training split: the positive term's weight in the loss."""
    return float(np.sum(train_labels == 0) / np.sum(train_labels == 1))


def _check_both_classes(label: str, column: np.ndarray, parts: dict, where: str = "") -> None:
    for name, idx in parts.items():
        positives = int(np.sum(column[idx] == 1))
        if positives == 0 or positives == len(idx):
            raise DataError(
                f"label {label!r}: the {name} split{where} has {positives} positives of "
                f"{len(idx)} images; both classes are needed"
            )
