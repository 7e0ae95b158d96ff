"""Devices, meshes and processes: data parallelism with ``jax.sharding``.

One ``Mesh`` with a single ``"data"`` axis over the devices a cell trains on. Parameters,
BatchNorm statistics and optimiser state are replicated; every batch is sharded along its image
axis. The step is written for the global batch, so XLA inserts the all-reduces: gradients are
summed across devices and BatchNorm's batch mean and variance are taken over the whole
microbatch, exactly as on one device. The same config therefore gives the same update on 1 or N
devices (same effective batch and microbatch sizes).

Multi-host: :func:`initialize` starts JAX's distributed runtime (SLURM's environment is picked up
by JAX itself); each process then loads only its own rows of every batch, and the global batch is
assembled from the processes' pieces without any host gathering them.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"


def initialize(mode: str = "auto") -> None:
    """Start ``jax.distributed`` when this process is one of several.

    ``"auto"``: when SLURM launched more than one task, or ``JAX_COORDINATOR_ADDRESS`` is set
    (with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``); ``"on"``: always; ``"off"``: never.
    """
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"config.parallel.distributed = {mode!r}; expected auto, on or off")
    if mode == "off" or jax.distributed.is_initialized():
        return
    env = os.environ
    explicit = "JAX_COORDINATOR_ADDRESS" in env
    slurm = int(env.get("SLURM_NTASKS", "1")) > 1
    if mode == "auto" and not (explicit or slurm):
        return
    if explicit:
        jax.distributed.initialize(
            coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(env["JAX_NUM_PROCESSES"]),
            process_id=int(env["JAX_PROCESS_ID"]),
        )
    else:
        jax.distributed.initialize()  # SLURM (or another cluster JAX detects)


def is_primary() -> bool:
    """Process 0 writes results, reports, W&B and checkpoint metadata."""
    return jax.process_index() == 0


def make_mesh(devices=None) -> Mesh:
    """A 1-D ``"data"`` mesh over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.array(devices), (AXIS,))


def first_device_mesh() -> Mesh:
    """The mesh a cell uses when none is given: this process's first device."""
    return make_mesh(jax.local_devices()[:1])


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Shard dimension ``axis`` (the image axis) over the mesh."""
    return NamedSharding(mesh, P(*([None] * axis), AXIS))


def replicate(tree, mesh: Mesh):
    """The same value on every device of ``mesh``; with several processes each process passes
    its own (identical) copy, e.g. a model initialised from the same seed."""
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)))
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x, x.shape)

    return jax.tree.map(put, tree)


def global_batch(local: np.ndarray, mesh: Mesh, axis: int = 0) -> jax.Array:
    """This process's rows of a batch -> the global batch, sharded along ``axis``.

    With one process ``local`` is the whole batch. With several, each passes its own
    (equal-sized) rows, and the global array is their concatenation in process order.
    """
    sharding = batch_sharding(mesh, axis)
    if jax.process_count() == 1:
        return jax.device_put(local, sharding)
    shape = list(local.shape)
    shape[axis] *= jax.process_count()
    return jax.make_array_from_process_local_data(sharding, local, tuple(shape))


def local_rows(array: jax.Array, axis: int = 0) -> np.ndarray:
    """The rows of a batch-sharded global array that live on this process, in order."""
    if jax.process_count() == 1:
        return np.asarray(array)
    shards = sorted(array.addressable_shards, key=lambda s: s.index[axis].start or 0)
    seen, rows = set(), []
    for shard in shards:
        start = shard.index[axis].start or 0
        if start not in seen:
            seen.add(start)
            rows.append(np.asarray(shard.data))
    return np.concatenate(rows, axis=axis)


def check_divisible(what: str, size: int, mesh: Mesh) -> None:
    if size % mesh.size:
        raise ValueError(
            f"{what} = {size} must be a multiple of the {mesh.size} devices it is sharded over"
        )
