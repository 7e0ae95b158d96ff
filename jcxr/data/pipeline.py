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
        if self.train and len(self.records) < self.batch_size * self.process_count:
            raise DataError(
                f"{len(self.records)} training records cannot fill one batch of "
                f"{self.batch_size} x {self.process_count} process(es)"
            )
        self._source = grain.sources.ArrayRecordDataSource(
            shard_paths(self.shards, self.resolution)
        )
        self.state = {"epoch": 0, "batch": 0}

    @property
    def batches_per_epoch(self) -> int:
        if self.train:
            return len(self.records) // self.process_count // self.batch_size
        per_process = -(-len(self.records) // self.process_count)  # ceil: every record kept
        return -(-per_process // self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """This process's records for ``epoch``, padded with -1 for evaluation."""
        if self.train:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(self.records)
            usable = len(order) // self.process_count * self.process_count
            mine = order[:usable][self.process_index :: self.process_count]
            return mine[: self.batches_per_epoch * self.batch_size]
        per_process = -(-len(self.records) // self.process_count)
        padded = np.full(per_process * self.process_count, -1, np.int64)
        padded[: len(self.records)] = self.records
        mine = padded[self.process_index :: self.process_count]
        out = np.full(self.batches_per_epoch * self.batch_size, -1, np.int64)
        out[: len(mine)] = mine
        return out

    def batch_records(self, epoch: int, start_batch: int = 0) -> np.ndarray:
        """``[batches, B]`` records of ``epoch`` from ``start_batch`` on (-1 = padding)."""
        return self.epoch_order(epoch).reshape(-1, self.batch_size)[start_batch:]

    def targets(self, records: np.ndarray) -> dict:
        """The non-pixel fields of a batch: ``label``, ``mask`` and ``record``."""
        mask = records >= 0
        label = np.where(mask, self.labels[np.maximum(records, 0)], 0.0).astype(np.float32)
        return {"label": label, "mask": mask, "record": records}

    def _dataset(self, epoch: int, start_batch: int):
        resolution, source = self.resolution, self._source
        blank = np.zeros((resolution, resolution), np.uint8)

        def load_batch(records):
            pixels = np.stack(
                [decode_pixels(source[int(r)], resolution) if r >= 0 else blank for r in records]
            )
            return {"pixels": pixels, **self.targets(records)}

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
