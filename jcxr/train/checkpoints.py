"""Orbax ``latest`` / ``best`` checkpoints of one cell: model, optimiser, RNG state, and a JSON
``meta`` (loader position, plateau tracker, metric history, ``best_step``) beside them.

Kill at any moment, resume always. Orbax writes a step under a temporary name and renames it
when complete, so a step on disk is whole; what a kill can leave is (a) a half-written step
(``N.orbax-checkpoint-tmp*``), removed with a log line when the series is opened, and (b) a
``best`` step newer than ``latest`` (the epoch end saves ``best`` first): the rerun resumes from
``latest`` and will redo that epoch, so :func:`reconcile_best` removes the newer ``best`` steps
with a log line, and the rerun never saves a step that already exists. ``best`` keeps two steps
so that the best before the removed one is still there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from jcxr.train.step import Steps

TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax's name for a step still being written


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

    def __init__(
        self, directory: Path, name: str, *, keep: int = 1, log: Callable[[str], None] = print
    ):
        path = (directory / name).absolute()
        for orphan in sorted(path.glob(f"*{TMP_SUFFIX}*")) if path.is_dir() else []:
            log(f"{path}: removing {orphan.name}, a checkpoint left half-written by a killed run")
        with self._lock:
            self.manager = ocp.CheckpointManager(
                path,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=keep, create=True, cleanup_tmp_directories=True
                ),
            )
            # the clean-up runs in the background: wait, so no orphan outlives the opening
            self.manager.wait_until_finished()

    def saved_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def delete(self, step: int) -> None:
        with self._lock:
            self.manager.delete(step)

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

    def restore(self, steps: Steps, step: int | None = None) -> dict | None:
        """Load checkpoint ``step`` (default: the newest) into ``steps`` and return its meta;
        None if there is none."""
        latest = self.manager.latest_step() if step is None else step
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


def reconcile_best(best: Checkpoints, meta: dict, log: Callable[[str], None] = print) -> None:
    """Make ``best`` agree with ``meta``, the state a cell resumes from (``latest``'s meta).

    ``best`` steps after ``meta["step"]`` belong to epochs the rerun will train again: they are
    removed. ``meta["best_step"]`` names the best checkpoint (older metas: the newest ``best``
    step not after ``meta["step"]``); if it is gone, best-epoch selection starts afresh.
    """
    for step in best.saved_steps():
        if step > meta["step"]:
            log(f"{best.manager.directory}: removing step {step}, saved after the step the cell "
                f"resumes from ({meta['step']}); that epoch is trained again")  # fmt: skip
            best.delete(step)
    kept = best.saved_steps()
    if meta.get("best") is not None and "best_step" not in meta:
        meta["best_step"] = kept[-1] if kept else None
    if meta.get("best") is not None and meta["best_step"] not in kept:
        log(f"{best.manager.directory}: the best checkpoint (step {meta['best_step']}) is missing;"
            " best-epoch selection starts again from the resumed epoch")  # fmt: skip
        meta["best"], meta["best_step"] = None, None
