"""Grain pipeline from pre-resized shards to host batches of uint8 pixels.

A :class:`Loader` serves one resolution, one label and one set of records (a split). Training
batches are reshuffled every epoch from ``(seed, epoch)`` and drop the remainder; evaluation
batches keep every record exactly once, padding the last batch and marking real rows in
``mask``. Its position is the plain ``state = {"epoch", "batch"}``: a restored loader yields
exactly the batches that would have come next.

Batches are dicts of numpy arrays: ``pixels`` ``[B, R, R]`` uint8, ``label`` ``[B]`` float32,
``mask`` ``[B]`` bool, ``record`` ``[B]`` int64 (index into the shard index, -1 for padding).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grain
import numpy as np

from jcxr.data.shards import decode_pixels, shard_paths
from jcxr.data.table import DataError


@dataclasses.dataclass
class Loader:
    shards: str | Path
    resolution: int
    records: np.ndarray  # indices into the shard index (a split), any order
    labels: np.ndarray  # (len(index),) float32 label of every record in the shards
    batch_size: int
    train: bool
    seed: int = 0
    process_index: int = 0
    process_count: int = 1
    read_threads: int = 4
    prefetch: int = 4

    def __post_init__(self):
        self.records = np.sort(np.asarray(self.records, np.int64))
        if self.batch_size < 1:
            raise DataError(f"batch_size must be >= 1; got {self.batch_size}")
        if np.isnan(self.labels[self.records]).any():
            raise DataError("some records of this split have no label (NaN); filter them first")
        self.units = self._units()
        if self.train and len(self.units) < self.batch_size * self.process_count:
            raise DataError(
                f"{len(self.units)} training {self.unit}s cannot fill one batch of "
                f"{self.batch_size} x {self.process_count} process(es)"
            )
        self._source = grain.sources.ArrayRecordDataSource(
            shard_paths(self.shards, self.resolution)
        )
        self.state = {"epoch": 0, "batch": 0}

    unit = "image"

    def _units(self) -> np.ndarray:
        """What a batch row holds: one record each (a :class:`StudyLoader`: a study's views)."""
        return self.records

    @property
    def batches_per_epoch(self) -> int:
        if self.train:
            return len(self.units) // self.process_count // self.batch_size
        per_process = -(-len(self.units) // self.process_count)  # ceil: every unit kept
        return -(-per_process // self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """This process's units (records, or rows of a study's records) for ``epoch``, padded
        with -1 for evaluation."""
        units, shape = self.units, self.units.shape[1:]
        if self.train:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(units)
            usable = len(order) // self.process_count * self.process_count
            mine = order[:usable][self.process_index :: self.process_count]
            return mine[: self.batches_per_epoch * self.batch_size]
        per_process = -(-len(units) // self.process_count)
        padded = np.full((per_process * self.process_count, *shape), -1, np.int64)
        padded[: len(units)] = units
        mine = padded[self.process_index :: self.process_count]
        out = np.full((self.batches_per_epoch * self.batch_size, *shape), -1, np.int64)
        out[: len(mine)] = mine
        return out

    def batch_records(self, epoch: int, start_batch: int = 0) -> np.ndarray:
        """``[batches, B]`` (studies: ``[batches, B, V]``) records of ``epoch`` from
        ``start_batch`` on (-1 = padding)."""
        order = self.epoch_order(epoch)
        return order.reshape(-1, self.batch_size, *order.shape[1:])[start_batch:]

    def targets(self, records: np.ndarray) -> dict:
        """The non-pixel fields of a batch: ``label``, ``mask`` and ``record``."""
        mask = records >= 0
        label = np.where(mask, self.labels[np.maximum(records, 0)], 0.0).astype(np.float32)
        return {"label": label, "mask": mask, "record": records}

    def _dataset(self, epoch: int, start_batch: int):
        resolution, source = self.resolution, self._source
        blank = np.zeros((resolution, resolution), np.uint8)

        def load_batch(records):
            pixels = np.stack([decode_pixels(source[int(r)], resolution) if r >= 0 else blank
                               for r in records.ravel()])  # fmt: skip
            return {"pixels": pixels.reshape(*records.shape, resolution, resolution),
                    **self.targets(records)}  # fmt: skip

        order = self.batch_records(epoch, start_batch)
        dataset = grain.MapDataset.source(list(order)).map(load_batch)
        options = grain.ReadOptions(
            num_threads=self.read_threads, prefetch_buffer_size=self.prefetch
        )
        return dataset.to_iter_dataset(options)

    def __iter__(self):
        """Batches from the current state to the end of that epoch; advances the state."""
        epoch = self.state["epoch"]
        return self.tracked(epoch, self._dataset(epoch, self.state["batch"]))

    def tracked(self, epoch: int, batches):
        """``batches`` of ``epoch``, advancing ``state`` past each one as it is yielded."""
        for batch in batches:
            self.state = {"epoch": epoch, "batch": self.state["batch"] + 1}
            yield batch
        self.state = {"epoch": epoch + 1, "batch": 0}

    def get_state(self) -> dict:
        return dict(self.state)

    def set_state(self, state: dict) -> None:
        if set(state) != {"epoch", "batch"} or not 0 <= state["batch"] <= self.batches_per_epoch:
            raise DataError(f"invalid loader state {state}; expected epoch and batch in range")
        self.state = {"epoch": int(state["epoch"]), "batch": int(state["batch"])}


@dataclasses.dataclass
class StudyLoader(Loader):
    """A :class:`Loader` whose unit is the study (Chizari 2021: "one element of a batch contains
    one study"): each batch row holds a study's views, up to ``views`` of them (the lowest
    records first; a study with more keeps its first ``views``, counted in ``dropped_views``),
    padded with -1. Batches: ``pixels`` ``[B, V, R, R]``, ``views`` ``[B, V]`` (real views),
    ``label`` ``[B]`` (the max over its views), ``mask`` ``[B]`` and ``record`` ``[B, V]``.
    Shuffled, split over processes, resumed and padded exactly as images are."""

    studies: np.ndarray | None = None  # (len(index),) study of every record in the shards
    views: int = 3
    unit = "study"

    def _units(self) -> np.ndarray:
        if self.studies is None:
            raise DataError("training by study needs study IDs (only CheXpert has studies)")
        ids = self.studies[self.records]
        _, study, counts = np.unique(ids, return_inverse=True, return_counts=True)
        order = np.argsort(study, kind="stable")  # records of a study together, ascending
        starts = np.cumsum(counts) - counts
        slot = np.arange(len(order)) - np.repeat(starts, counts)  # a view's place in its study
        kept = slot < self.views
        units = np.full((len(counts), self.views), -1, np.int64)
        units[study[order][kept], slot[kept]] = self.records[order][kept]
        self.dropped_views = int(np.sum(~kept))
        return units[np.argsort(units[:, 0])]  # studies in order of their first record

    def targets(self, records: np.ndarray) -> dict:
        views = records >= 0
        per_view = np.where(views, self.labels[np.maximum(records, 0)], -np.inf)
        label = np.where(views.any(-1), per_view.max(-1), 0.0).astype(np.float32)
        return {"label": label, "mask": views.any(-1), "views": views, "record": records}
