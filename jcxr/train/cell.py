"""Train and evaluate one sweep cell: (label, resolution, architecture, seed).

Before every evaluation BatchNorm's running statistics are recomputed with the current weights
on a fixed set of training images (precise BatchNorm, ``config.train.precise_bn_images``).

Everything a cell needs to continue lives in its orbax checkpoints (``latest`` and ``best``):
parameters, BatchNorm statistics, RNG state, optimiser state, and a ``meta`` holding the data
loader's position, the plateau tracker and the metric history. Killing the process at any
moment and rerunning resumes from ``latest`` and ends, on CPU, with the same metrics as an
uninterrupted run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

from jcxr import convergence
from jcxr._io import atomic_write_npz, atomic_write_text
from jcxr.data import device as device_data
from jcxr.data.label_data import LabelData
from jcxr.data.pipeline import Loader, StudyLoader
from jcxr.data.shards import read_index, read_manifest
from jcxr.data.table import DataError
from jcxr.results import Cell, CellResult
from jcxr.stats import delong_unpaired
from jcxr.tracking import Tracker
from jcxr.train import parallel
from jcxr.train.build import build_steps
from jcxr.train.checkpoints import Checkpoints, reconcile_best
from jcxr.train.evaluate import evaluate
from jcxr.train.optim import Plateau, make_optimizer
from jcxr.train.step import Steps

__all__ = ["Cell", "CellFailed", "train_cell"]


class CellFailed(RuntimeError):
    pass


def train_cell(
    config,
    cell: Cell,
    data: LabelData,
    shards: Path,
    workdir: Path,
    tracker: Tracker,
    *,
    mesh=None,
) -> CellResult:
    """Train ``cell`` on ``mesh`` to the end (resuming if it was interrupted); return its result.

    With several processes each loads its own rows of every batch (``1 / process_count`` of
    it); only process 0 writes the result, predictions and diagnostics.
    """
    cell_dir = workdir / "cells" / cell.id
    result_path = cell_dir / "result.json"
    if result_path.is_file():
        return CellResult.from_json(json.loads(result_path.read_text()))
    cell_dir.mkdir(parents=True, exist_ok=True)
    mesh = mesh if mesh is not None else parallel.first_device_mesh()
    train_loader, eval_loaders = _loaders(config, cell, data, shards, mesh, tracker)
    epochs = config.train.epochs
    tx = make_optimizer(config.optim, train_loader.batches_per_epoch, epochs)
    steps = build_steps(config, cell, data, tx, mesh, tracker.info)
    precise = _precise_bn_loader(config, cell, data, shards, steps)
    latest = Checkpoints(cell_dir, "latest", log=tracker.info)
    best = Checkpoints(cell_dir, "best", keep=2, log=tracker.info)
    plateau = Plateau(config.optim.plateau_patience, config.optim.plateau_factor)
    meta = latest.restore(steps) or {
        "step": 0,
        "loader": train_loader.get_state(),
        "history": [],
        "best": None,
        "best_step": None,
        "plateau": plateau.state(),
    }
    meta.setdefault("epoch_loss", [0.0, 0])  # this epoch's training loss: sum, steps
    reconcile_best(best, meta, tracker.info)
    train_loader.set_state(meta["loader"])
    plateau.load(meta["plateau"])
    if meta["step"]:
        tracker.info(
            f"{cell.id}: resuming at step {meta['step']} (epoch {meta['loader']['epoch']})"
        )
    started = time.perf_counter()
    try:
        while (epoch := train_loader.state["epoch"]) < epochs and not _plateaued(config, meta):
            _train_epoch(config, cell, steps, train_loader, meta, latest, tracker)
            if precise is not None:
                steps.recompute_batchnorm(batch["pixels"] for batch in precise)
            metrics, _ = evaluate(steps, eval_loaders["val"], data.studies)
            _end_epoch(config, cell, epoch, steps, metrics, meta, plateau, best, tracker)
            meta.update(loader=train_loader.get_state(), plateau=plateau.state())
            latest.save(meta["step"], steps, meta)
    except CellFailed as failure:
        latest.close(), best.close()
        diagnostic = {"status": "failed", "reason": str(failure), "step": meta["step"],
                      "history": meta["history"]}  # fmt: skip
        if parallel.is_primary():
            atomic_write_text(cell_dir / "failure.json", json.dumps(diagnostic, indent=2))
        return CellResult(cell, status="failed", reason=str(failure))
    if epoch < epochs:
        tracker.info(
            f"{cell.id}: validation AUC has not improved for {config.train.patience} epochs; "
            f"stopped after epoch {epoch} of at most {epochs} (config.train.until_plateau)"
        )
    best.restore(steps, meta["best_step"])
    latest.close(), best.close()
    outputs, predicted = {}, {}
    for name, loader in eval_loaders.items():
        outputs[name], predicted[name] = evaluate(steps, loader, data.studies)
    if config.eval.external:
        outputs["external"], predicted["external"] = evaluate(
            steps, external_loader(config, cell, jax.process_index(), jax.process_count())
        )
        outputs["external"].update(internal_vs_external(predicted))
    if parallel.is_primary():
        for name, predictions in predicted.items():
            atomic_write_npz(cell_dir / f"predictions_{name}.npz", predictions)
    result = CellResult(
        cell,
        status="done",
        best_epoch=meta["best"]["epoch"],
        positive_weight=data.positive_weight,
        train_images=len(data.splits["train"]),
        steps=meta["step"],
        microbatch_size=steps.microbatch_size,
        devices=tuple(str(d) for d in mesh.devices.flat),
        seconds=time.perf_counter() - started,
        metrics=outputs["val"],
        splits=outputs,
        history=tuple(meta["history"]),
        flags=convergence.flags(meta["history"]),
    )
    saved = result.to_json()
    result = CellResult.from_json(saved)  # exactly what a rerun will read back
    if parallel.is_primary():
        atomic_write_text(result_path, json.dumps(saved, indent=2, allow_nan=False))
    return result


def _train_epoch(config, cell, steps: Steps, loader, meta: dict, latest, tracker) -> None:
    """The rest of the current epoch: steps, logging windows and mid-epoch checkpoints."""
    t = config.train
    per_epoch = loader.batches_per_epoch
    window = []
    for batch in tracker.progress(
        loader,
        f"{cell.id} epoch {loader.state['epoch'] + 1}/{t.epochs}",
        per_epoch,
        initial=loader.state["batch"],
    ):
        views = batch.get("views")
        window.append(steps.step(batch["pixels"], batch["label"], meta["step"], views))
        meta["step"] += 1
        checkpoint = meta["step"] % t.checkpoint_every == 0 and loader.state["batch"] < per_epoch
        if window and (meta["step"] % t.log_every == 0 or checkpoint):
            _log_window(tracker, cell, window, steps, meta)
            window = []
        if checkpoint:
            meta["loader"] = loader.get_state()
            latest.save(meta["step"], steps, meta)
    if window:
        _log_window(tracker, cell, window, steps, meta)


def _plateaued(config, meta: dict) -> bool:
    """With ``train.until_plateau``: no validation AUC gain for ``train.patience`` epochs. Read
    from the history, so a resumed cell stops where an uninterrupted one did."""
    return config.train.until_plateau and convergence.plateaued(
        meta["history"], config.train.patience
    )


def _end_epoch(config, cell, epoch: int, steps: Steps, metrics, meta, plateau, best, tracker):
    """Record epoch ``epoch``'s (from 0) validation ``metrics``; keep the best; reduce the rate
    on a plateau."""
    total, count = meta["epoch_loss"]
    metrics["train_loss"] = total / max(count, 1)
    meta["epoch_loss"] = [0.0, 0]
    metrics["epoch"] = epoch + 1
    meta["history"].append(metrics)
    tracker.epoch(cell, metrics, meta["step"])
    if meta["best"] is None or metrics["auc"] > meta["best"]["auc"]:
        meta["best"], meta["best_step"] = metrics, meta["step"]
        best.save(meta["step"], steps, meta)
    if config.optim.recipe == "rmsprop_plateau" and plateau.update(metrics["loss"]):
        steps.scale_learning_rate(plateau.factor)


def _loaders(config, cell: Cell, data: LabelData, shards: Path, mesh, tracker):
    """The training loader and one evaluation loader per other split; this process's rows."""
    processes = jax.process_count()
    common = dict(shards=shards, resolution=cell.resolution, labels=data.labels,
                  process_index=jax.process_index(), process_count=processes)  # fmt: skip
    train_options = dict(records=data.splits["train"], train=True, seed=cell.seed,
                         batch_size=config.train.effective_batch_size // processes)  # fmt: skip
    if config.train.unit == "study":
        train = StudyLoader(studies=data.study_ids, views=config.train.views, **train_options,
                            **common)  # fmt: skip
        if train.dropped_views:
            tracker.info(f"{cell.id}: {train.dropped_views} views beyond "
                         f"{config.train.views} per study left out of training")  # fmt: skip
    else:
        train = Loader(**train_options, **common)
    evals = {
        name: Loader(
            records=rows, batch_size=config.eval.batch_size // processes, train=False, **common
        )
        for name, rows in data.splits.items()
        if name != "train"
    }
    return _on_device(config, mesh, train, evals, tracker)


def _precise_bn_loader(config, cell: Cell, data: LabelData, shards: Path, steps: Steps):
    """The training images precise BatchNorm statistics are computed on before every
    evaluation (None: off): ``config.train.precise_bn_images`` of them, in batches of as many
    images as a training microbatch holds (a study microbatch: its view slots), in whole batches,
    drawn once by the cell's seed, unaugmented. So the statistics depend only on the weights
    and are the same after a resume."""
    train = data.splits["train"]
    size = steps.microbatch_size * (steps.views or 1)  # images, as many as a microbatch holds
    count = min(config.train.precise_bn_images, len(train)) // size * size
    if count == 0:
        return None
    processes = jax.process_count()
    return Loader(
        shards=shards,
        resolution=cell.resolution,
        records=np.random.default_rng(cell.seed).choice(train, count, replace=False),
        labels=data.labels,
        batch_size=size // processes,
        train=False,
        process_index=jax.process_index(),
        process_count=processes,
    )


def external_loader(config, cell: Cell, process_index: int = 0, process_count: int = 1) -> Loader:
    """The images of config.eval.external's shards that have the cell's label (every one, per
    image), at the cell's resolution."""
    shards = Path(config.eval.external)
    labels = read_index(shards, cell.resolution).label(cell.label)
    rows = np.flatnonzero(~np.isnan(labels))
    return Loader(shards=shards, resolution=cell.resolution, labels=labels, records=rows,
                  batch_size=config.eval.batch_size // process_count, train=False,
                  process_index=process_index, process_count=process_count)  # fmt: skip


def check_external(config) -> None:
    """Before anything trains: config.eval.external holds every resolution and label of the
    sweep, each label with positives and negatives."""
    shards = Path(config.eval.external)
    try:
        prepared = read_manifest(shards)["resolutions"]
    except (DataError, OSError, KeyError) as error:
        raise DataError(
            f"config.eval.external = {str(shards)!r}: not a shard folder ({error})"
        ) from None
    missing = sorted(set(config.sweep.resolutions) - set(prepared))
    if missing:
        raise DataError(f"config.eval.external = {str(shards)!r} has no shards at {missing} px "
                        f"(prepared: {prepared}); prepare them there too")  # fmt: skip
    index = read_index(shards, config.sweep.resolutions[0])
    for label in config.sweep.labels:
        values = index.label(label)  # names the labels there if it is not one
        if not (np.any(values == 1) and np.any(values == 0)):
            raise DataError(f"config.eval.external = {str(shards)!r}: {label} needs positive and "
                            "negative images there")  # fmt: skip


def internal_vs_external(predicted: dict) -> dict:
    """The internal test AUC against the external one: unpaired DeLong (independent case
    sets; Cardona Cardenas et al. 2020's question, does the model hold up elsewhere)."""
    internal = predicted.get("test")
    if internal is None or not len(internal["label"]):
        return {}
    external = predicted["external"]
    result = delong_unpaired(internal["label"], internal["score"], external["label"],
                             external["score"], names=("test", "external"))  # fmt: skip
    return {"auc_minus_test": -result.diff, "auc_minus_test_low": -result.diff_ci[1],
            "auc_minus_test_high": -result.diff_ci[0], "p_vs_test": result.p}  # fmt: skip


def _on_device(config, mesh, train_loader, eval_loaders, tracker):
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
    tracker.info(f"device dataset: {total / 2**20:.0f} MiB of uint8 pixels kept on {device}")
    wrapped = [device_data.DeviceDataset(lo, device) for lo in loaders]
    return wrapped[0], dict(zip(eval_loaders, wrapped[1:], strict=True))


def _log_window(tracker, cell, window, steps: Steps, meta: dict) -> None:
    """Host sync for logging (every log_every steps and before a checkpoint): stop on a
    non-finite loss; add the window's losses to ``meta["epoch_loss"]`` = [sum, steps]."""
    # one explicit transfer for the window: the loop between windows never waits on the device
    losses, grad_norm, rates = jax.device_get(
        ([m["loss"] for m in window], window[-1]["grad_norm"], steps.learning_rates())
    )
    losses = np.asarray(losses)
    if not np.all(np.isfinite(losses)):
        bad = meta["step"] - len(window) + int(np.argmin(np.isfinite(losses)))
        raise CellFailed(f"non-finite training loss at step {bad + 1}: {losses.tolist()}")
    meta["epoch_loss"][0] += float(losses.astype(np.float64).sum())
    meta["epoch_loss"][1] += len(losses)
    rates = {k: float(v) for k, v in rates.items()}
    tracker.step(
        cell, meta["step"], {"loss": float(losses.mean()), "grad_norm": float(grad_norm), **rates}
    )
