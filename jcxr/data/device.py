"""A split that stays in accelerator memory: read once, then batches are gathered on device.

:class:`DeviceDataset` wraps a :class:`~jcxr.data.pipeline.Loader` and serves exactly its
batches (same records, same order, same ``{epoch, batch}`` state), except that ``pixels`` is a
device array gathered from a uint8 copy of the whole split. After the one read at start-up the
host only sends each batch's record indices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jcxr.data.pipeline import Loader


def split_bytes(loader: Loader) -> int:
    return len(loader.records) * loader.resolution**2


def fits(nbytes: int, device, fraction: float) -> bool:
    """Whether ``nbytes`` fit in ``fraction`` of an accelerator's memory (never on CPU, where
    device and host memory are the same and there is nothing to gain)."""
    if device.platform == "cpu":
        return False
    stats = device.memory_stats() or {}
    return nbytes <= fraction * stats.get("bytes_limit", 0)


class DeviceDataset:
    def __init__(self, loader: Loader, device):
        self.loader = loader
        reader = Loader(
            loader.shards,
            loader.resolution,
            loader.records,
            loader.labels,
            batch_size=256,
            train=False,
            read_threads=loader.read_threads,
        )
        pixels = np.empty((len(loader.records), loader.resolution, loader.resolution), np.uint8)
        filled = 0
        for batch in reader:  # records in sorted order, padding last
            n = int(batch["mask"].sum())
            pixels[filled : filled + n] = batch["pixels"][:n]
            filled += n
        self.pixels = jax.device_put(pixels, device)
        self.device = device
        self._gather = jax.jit(lambda data, rows: jnp.take(data, rows, axis=0))

    @property
    def batches_per_epoch(self) -> int:
        return self.loader.batches_per_epoch

    @property
    def state(self) -> dict:
        return self.loader.state

    def get_state(self) -> dict:
        return self.loader.get_state()

    def set_state(self, state: dict) -> None:
        self.loader.set_state(state)

    def __iter__(self):
        """The Loader's batches from its current state, ``pixels`` gathered on the device."""
        loader = self.loader
        epoch = loader.state["epoch"]

        def batches():
            for records in loader.batch_records(epoch, loader.state["batch"]):
                rows = np.searchsorted(loader.records, np.maximum(records, 0)).astype(np.int32)
                pixels = self._gather(self.pixels, jax.device_put(rows, self.device))
                yield {"pixels": pixels, **loader.targets(records)}

        return loader.tracked(epoch, batches())
