"""Train and evaluate one sweep cell: (label, resolution, architecture, seed).

Everything a cell needs to continue lives in its orbax checkpoints (``latest`` and ``best``):
parameters, BatchNorm statistics, RNG state, optimiser state, the data loader's position, the
plateau tracker and the metric history. Killing the process at any moment and rerunning
resumes from ``latest`` and ends, on CPU, with the same metrics as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from jcxr import models
from jcxr._io import atomic_write_text, json_ready
from jcxr.data import device as device_data
from jcxr.data import splits
from jcxr.data.augment import Augmentation
from jcxr.data.pipeline import Loader
from jcxr.data.shards import read_manifest
from jcxr.data.table import DataError, Table
from jcxr.train import memory, parallel
from jcxr.train.metrics import binary_metrics
from jcxr.train.optim import Plateau, current_learning_rates, make_optimizer, scale_learning_rate
from jcxr.train.step import Steps, bce_terms


@dataclasses.dataclass(frozen=True)
class Cell:
    label: str
    resolution: int
    arch: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.label.replace(' ', '_')}__{self.arch}__r{self.resolution}__s{self.seed}"


@dataclasses.dataclass(frozen=True)
class LabelData:
    """One label's records (indices into the shard index) per split, and its loss weights."""

    label: str
    labels: np.ndarray  # (N,) float32 over every record of the shards; NaN = excluded
    splits: dict[str, np.ndarray]
    positive_weight: float
    # (N,) study of every record where evaluation is per study (max over its views), else None
    studies: np.ndarray | None = None


def index_table(shards: Path, resolution: int) -> Table:
    """The shard index at ``resolution`` as a Table (record order)."""
    manifest = read_manifest(shards)
    index = np.load(Path(shards) / f"res{resolution}" / "index.npz")
    return Table(
        source=manifest["source"],
        image_ids=index["image_id"],
        patient_ids=index["patient_id"],
        label_names=tuple(manifest["label_names"]),
        labels=index["labels"],
        views=index["view"],
        paths=index["image_id"],
        study_ids=index["study_id"] if "study_id" in index else None,
        official_split=index["official_split"] if "official_split" in index else None,
    )


def label_data(config, shards: Path, label: str) -> LabelData:
    """Splits for ``label``: patient-grouped, from config.data (optionally seed 001's subsample).

    With ``data.test_split = "official"`` the test set is the source's own (NIH's test_list.txt,
    CheXpert's valid.csv) and train/val split the rest in the ratio train_fraction :
    val_fraction. Splits depend on the table and the split seed only, never on the resolution,
    so every resolution of a label is evaluated on the same images.
    """
    d = config.data
    table = index_table(shards, config.sweep.resolutions[0])
    column = table.label(label)
    labelled = ~np.isnan(column)
    test = None
    if d.test_split == "official":
        if table.official_split is None:
            raise DataError(
                f"config.data.test_split = 'official', but the {table.source} shards in {shards} "
                "have no official test set (NIH: test_list.txt and train_val_list.txt next to "
                "the CSV; CheXpert: valid.csv); prepare them from a complete copy or use 'random'"
            )
        test = np.flatnonzero(labelled & (table.official_split == "test"))
        pool = np.flatnonzero(labelled & (table.official_split == "train"))
    else:
        pool = np.flatnonzero(labelled)
    fractions = {"train": d.train_fraction, "val": d.val_fraction}
    if test is None and 1.0 - d.train_fraction - d.val_fraction > 1e-9:
        fractions["test"] = 1.0 - d.train_fraction - d.val_fraction
    if d.subsample_size:
        sub = splits.positive_enriched_subsample(
            table.subset(pool), label, size=d.subsample_size, seed=d.split_seed
        )
        rows, weight = pool[sub.rows], sub.positive_weight
    else:
        rows, weight = pool, None
    if test is not None:
        total = sum(fractions.values())
        fractions = {name: f / total for name, f in fractions.items()}
    parts = splits.grouped_split(
        table.subset(rows), fractions, seed=d.split_seed, split_by=d.split_by
    )
    parts = {name: rows[idx] for name, idx in parts.items()}
    if test is not None:
        parts["test"] = test
    for name, idx in parts.items():
        positives = int(np.sum(column[idx] == 1))
        if positives == 0 or positives == len(idx):
            raise DataError(
                f"label {label!r}: the {name} split has {positives} positives of "
                f"{len(idx)} images; both classes are needed"
            )
    if weight is None:
        train = column[parts["train"]]
        weight = float(np.sum(train == 0) / np.sum(train == 1))
    studies = None
    if config.eval.study_level:
        if table.study_ids is None:
            raise DataError(
                f"config.eval.study_level = True, but the {table.source} shards in {shards} have "
                "no study IDs (only CheXpert has studies)"
            )
        studies = table.study_ids
    return LabelData(
        label=label,
        labels=column.astype(np.float32),
        splits=parts,
        positive_weight=float(weight),
        studies=studies,
    )


class CellFailed(RuntimeError):
    pass


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
    """Orbax ``latest`` / ``best`` checkpoints of one cell (model, optimiser, RNG, loader, meta).

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
        state = {"params": steps.params, "others": steps.others, "opt_state": steps.opt_state}
        with self._lock:
            self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(_savable(state)), meta=ocp.args.JsonSave(meta)
                ),
                force=True,
            )
            self.manager.wait_until_finished()

    def restore(self, steps: Steps) -> dict | None:
        latest = self.manager.latest_step()
        if latest is None:
            return None
        like = {"params": steps.params, "others": steps.others, "opt_state": steps.opt_state}
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
        state = _restored(restored["state"], like)
        steps.params, steps.others, steps.opt_state = (
            state["params"],
            state["others"],
            state["opt_state"],
        )
        return restored["meta"]

    def close(self):
        with self._lock:
            self.manager.wait_until_finished()
            self.manager.close()


def evaluate(steps: Steps, loader: Loader, studies: np.ndarray | None = None) -> tuple[dict, dict]:
    """Metrics and predictions (record, label, probability) over one full pass of ``loader``.

    With several processes, each predicts its own records and every process gets them all.
    With ``studies`` (the study of every record) the unit is the study: its probability and
    label are the max over its views, and its ``record`` is its lowest record index.
    """
    columns = {"record": [], "label": [], "prob": [], "logit": []}
    for batch in loader:
        p, z = steps.predict(batch["pixels"])
        for name, values in (("record", batch["record"]), ("label", batch["label"]),
                             ("prob", p), ("logit", z)):  # fmt: skip
            columns[name].append(np.asarray(values))
    columns = {name: np.concatenate(parts) for name, parts in columns.items()}
    if jax.process_count() > 1:  # padded to the same length in every process
        from jax.experimental import multihost_utils

        columns = {
            name: np.asarray(multihost_utils.process_allgather(values, tiled=True))
            for name, values in columns.items()
        }
    keep = columns["record"] >= 0  # drop evaluation padding
    order = np.flatnonzero(keep)[np.argsort(columns["record"][keep], kind="stable")]
    records, labels, probs, logits = (
        columns[n][order] for n in ("record", "label", "prob", "logit")
    )
    if studies is not None:
        records, labels, probs, logits = _per_study(
            studies[records], records, labels, probs, logits
        )
    loss = float(np.mean(np.asarray(bce_terms(logits, labels, 1.0, 1.0))))
    metrics = binary_metrics(labels, probs, loss)
    return metrics, {"record": records, "label": labels, "prob": probs}


def _per_study(study, *columns):
    """Each column reduced to one value per study: min for the record, max for the rest."""
    _, first, inverse = np.unique(study, return_index=True, return_inverse=True)
    out = []
    for i, column in enumerate(columns):
        reduced = np.full(first.size, np.inf if i == 0 else -np.inf, np.float64)
        (np.minimum if i == 0 else np.maximum).at(reduced, inverse, column)
        out.append(reduced.astype(column.dtype))
    return out


def build_steps(config, cell: Cell, data: LabelData, tx, mesh=None, log=print) -> Steps:
    """The cell's model (fresh head, optional pretrained backbone) and compiled steps on ``mesh``
    (default: the first local device), with the config's microbatch size or, for "auto", the
    largest that fits in device memory (:mod:`jcxr.train.memory`)."""
    t = config.train
    auto = t.microbatch_size == "auto"
    dtype = jnp.bfloat16 if config.model.dtype == "bfloat16" else jnp.float32
    model = models.create(
        cell.arch,
        num_outputs=1,
        head=config.model.head,
        dropout=config.model.dropout,
        dtype=dtype,
        pretrained=config.model.pretrained or None,
        remat=config.model.remat,
        rngs=nnx.Rngs(params=cell.seed, dropout=cell.seed + 1),
    )
    augmentation = None
    if t.augment:
        augmentation = Augmentation(
            t.max_rotation, t.max_scale, t.max_translate, t.flip, t.max_brightness, t.max_contrast
        )
    positive, negative = {
        "weighted_bce": (data.positive_weight, 1.0),
        "bce": (1.0, 1.0),
        "class_weights": (t.class_weights[1], t.class_weights[0]),
    }[t.loss]
    steps = Steps(
        model,
        tx,
        microbatches=1 if auto else t.effective_batch_size // t.microbatch_size,
        augmentation=augmentation,
        seed=cell.seed,
        dtype=dtype,
        positive_weight=positive,
        negative_weight=negative,
        tta_views=config.eval.tta_views,
        mesh=mesh,
    )
    if not auto:
        parallel.check_divisible("config.train.microbatch_size", t.microbatch_size, steps.mesh)
    else:
        m = config.model
        size = memory.choose_microbatch(
            steps,
            key=f"{cell.arch}|{m.head}|{m.dtype}|remat={m.remat}",
            effective_batch_size=t.effective_batch_size,
            resolution=cell.resolution,
            budget_bytes=memory.device_budget(
                steps.mesh.devices.flat[0], config.parallel.memory_fraction
            ),
            log=log,
        )
        steps.microbatches = t.effective_batch_size // size
    return steps


def train_cell(
    config,
    cell: Cell,
    data: LabelData,
    shards: Path,
    workdir: Path,
    log,
    *,
    mesh=None,
) -> dict:
    """Train ``cell`` on ``mesh`` to the end (resuming if it was interrupted); return its result.

    With several processes each loads its own rows of every batch (``1 / process_count`` of
    it); only process 0 writes the result, predictions and diagnostics.
    """
    cell_dir = workdir / "cells" / cell.id
    result_path = cell_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    cell_dir.mkdir(parents=True, exist_ok=True)
    t = config.train
    processes = jax.process_count()
    loader_kw = dict(
        shards=shards,
        resolution=cell.resolution,
        labels=data.labels,
        process_index=jax.process_index(),
        process_count=processes,
    )
    train_loader = Loader(
        records=data.splits["train"],
        batch_size=t.effective_batch_size // processes,
        train=True,
        seed=cell.seed,
        **loader_kw,
    )
    eval_loaders = {
        name: Loader(
            records=rows, batch_size=config.eval.batch_size // processes, train=False, **loader_kw
        )
        for name, rows in data.splits.items()
        if name != "train"
    }
    mesh = mesh if mesh is not None else parallel.first_device_mesh()
    train_loader, eval_loaders = _on_device(config, mesh, train_loader, eval_loaders, log)
    steps_per_epoch = train_loader.batches_per_epoch
    tx = make_optimizer(config.optim, steps_per_epoch, t.epochs)
    steps = build_steps(config, cell, data, tx, mesh, log.info)
    latest, best = Checkpoints(cell_dir, "latest"), Checkpoints(cell_dir, "best")
    plateau = Plateau(config.optim.plateau_patience, config.optim.plateau_factor)
    meta = latest.restore(steps) or {
        "step": 0,
        "loader": train_loader.get_state(),
        "history": [],
        "best": None,
        "plateau": plateau.state(),
    }
    meta.setdefault("epoch_loss", [0.0, 0])  # this epoch's training loss: sum, steps
    train_loader.set_state(meta["loader"])
    plateau.load(meta["plateau"])
    step = meta["step"]
    if step:
        log.info(f"{cell.id}: resuming at step {step} (epoch {meta['loader']['epoch']})")
    started = time.perf_counter()
    try:
        while train_loader.state["epoch"] < t.epochs:
            epoch = train_loader.state["epoch"]
            window = []
            for batch in log.progress(
                train_loader,
                f"{cell.id} epoch {epoch + 1}/{t.epochs}",
                steps_per_epoch,
                initial=train_loader.state["batch"],
            ):
                window.append(steps.step(batch["pixels"], batch["label"], step))
                step += 1
                mid_epoch = train_loader.state["batch"] < steps_per_epoch
                checkpoint = step % t.checkpoint_every == 0 and mid_epoch
                if window and (step % t.log_every == 0 or checkpoint):
                    _log_window(log, cell, window, steps, step, meta["epoch_loss"])
                    window = []
                if checkpoint:
                    meta.update(step=step, loader=train_loader.get_state())
                    latest.save(step, steps, meta)
            if window:
                _log_window(log, cell, window, steps, step, meta["epoch_loss"])
            metrics, _ = evaluate(steps, eval_loaders["val"], data.studies)
            total, count = meta["epoch_loss"]
            metrics["train_loss"] = total / max(count, 1)
            meta["epoch_loss"] = [0.0, 0]
            metrics["epoch"] = epoch + 1
            meta["history"].append(metrics)
            log.epoch(cell, metrics, step)
            if meta["best"] is None or metrics["auc"] > meta["best"]["auc"]:
                meta["best"] = metrics
                best.save(step, steps, meta)
            if config.optim.recipe == "rmsprop_plateau" and plateau.update(metrics["loss"]):
                steps.opt_state = scale_learning_rate(steps.opt_state, plateau.factor)
            meta.update(step=step, loader=train_loader.get_state(), plateau=plateau.state())
            latest.save(step, steps, meta)
    except CellFailed as failure:
        latest.close(), best.close()
        diagnostic = {
            "status": "failed",
            "reason": str(failure),
            "step": step,
            "history": meta["history"],
        }
        if parallel.is_primary():
            atomic_write_text(cell_dir / "failure.json", json.dumps(diagnostic, indent=2))
        return {**_cell_fields(cell), "status": "failed", "reason": str(failure)}
    best.restore(steps)
    latest.close(), best.close()
    outputs = {}
    for name, loader in eval_loaders.items():
        metrics, predictions = evaluate(steps, loader, data.studies)
        outputs[name] = metrics
        if parallel.is_primary():
            np.savez(cell_dir / f"predictions_{name}.npz", **predictions)
    result = {
        **_cell_fields(cell),
        "status": "done",
        "best_epoch": meta["best"]["epoch"],
        "positive_weight": data.positive_weight,
        "train_images": len(data.splits["train"]),
        "steps": step,
        "microbatch_size": t.effective_batch_size // steps.microbatches,
        "devices": [str(d) for d in mesh.devices.flat],
        "seconds": time.perf_counter() - started,
        "metrics": outputs["val"],
        "splits": outputs,
        "history": meta["history"],
    }
    result = json_ready(result)  # what is returned is exactly what a rerun will read back
    if parallel.is_primary():
        atomic_write_text(result_path, json.dumps(result, indent=2, allow_nan=False))
    return result


def _on_device(config, mesh, train_loader, eval_loaders, log):
    """Wrap the loaders in :class:`DeviceDataset` where config.parallel.device_dataset says so."""
    mode = config.parallel.device_dataset
    device = mesh.devices.flat[0]
    if mode == "off" or jax.process_count() > 1:
        return train_loader, eval_loaders
    loaders = [train_loader, *eval_loaders.values()]
    total = sum(device_data.split_bytes(lo) for lo in loaders)
    if mode == "auto" and not device_data.fits(
        total, device, config.parallel.device_dataset_fraction
    ):
        return train_loader, eval_loaders
    log.info(f"device dataset: {total / 2**20:.0f} MiB of uint8 pixels kept on {device}")
    wrapped = [device_data.DeviceDataset(lo, device) for lo in loaders]
    return wrapped[0], dict(zip(eval_loaders, wrapped[1:], strict=True))


def _cell_fields(cell: Cell) -> dict:
    return {
        "label": cell.label,
        "resolution": cell.resolution,
        "arch": cell.arch,
        "seed": cell.seed,
    }


def _log_window(log, cell, window, steps, step, epoch_loss):
    """Host sync for logging (every log_every steps and before a checkpoint): stop on a
    non-finite loss; add the window's losses to ``epoch_loss`` = [sum, steps] in place."""
    losses = np.asarray(jax.device_get([m["loss"] for m in window]))
    if not np.all(np.isfinite(losses)):
        bad = step - len(window) + int(np.argmin(np.isfinite(losses)))
        raise CellFailed(f"non-finite training loss at step {bad + 1}: {losses.tolist()}")
    epoch_loss[0] += float(losses.astype(np.float64).sum())
    epoch_loss[1] += len(losses)
    rates = {k: float(v) for k, v in current_learning_rates(steps.opt_state).items()}
    grad_norm = float(window[-1]["grad_norm"])
    log.step(cell, step, {"loss": float(losses.mean()), "grad_norm": grad_norm, **rates})
