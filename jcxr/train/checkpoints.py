"""Orbax ``latest`` / ``best`` checkpoints of one cell: model, optimiser, RNG state, and a JSON
``meta`` (loader position, plateau tracker, metric history) beside them."""

from __future__ import annotations

import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from jcxr.train.step import Steps


def _savable(tree):
    """Typed PRNG keys -> raw key data, so orbax can write them."""
    return jax.tree.map(
        lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
        tree,
    )


def _restored(tree, like):
    return jax.tree.map(
        lambda x, ref: (
            jax.random.wrap_key_data(x) if jnp.issubdtype(ref.dtype, jax.dtypes.prng_key) else x
        ),
        tree,
        like,
    )


class Checkpoints:
    """One orbax checkpoint series of a cell (``latest`` or ``best``), keeping one step.

    Cells trained side by side share one process; orbax's save and finalise machinery is not
    safe to run for several managers at once (a clean CI run lost a manager's temporary
    directory to another's), so every orbax operation in the process holds one lock and a
    save completes before the lock is released.
    """

    _lock = threading.Lock()

    def __init__(self, directory: Path, name: str):
        with self._lock:
            self.manager = ocp.CheckpointManager(
                (directory / name).absolute(),
                options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True),
            )

    def save(self, step: int, steps: Steps, meta: dict) -> None:
        with self._lock:
            self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(_savable(steps.state)),
                    meta=ocp.args.JsonSave(meta),
                ),
                force=True,
            )
            self.manager.wait_until_finished()

    def restore(self, steps: Steps) -> dict | None:
        """Load the newest checkpoint into ``steps`` and return its meta; None if there is none."""
        latest = self.manager.latest_step()
        if latest is None:
            return None
        like = steps.state
        with self._lock:
            restored = self.manager.restore(
                latest,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(
                        jax.tree.map(ocp.utils.to_shape_dtype_struct, _savable(like))
                    ),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        steps.load_state(_restored(restored["state"], like))
        return restored["meta"]

    def close(self):
        with self._lock:
            self.manager.wait_until_finished()
            self.manager.close()
