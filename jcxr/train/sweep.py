"""A sweep: every (label, resolution, arch, seed) cell, then DeLong across resolutions.

Outputs in the workdir: ``results.json`` / ``results.csv`` (every cell), ``comparisons/`` (the
DeLong result per label, arch and seed, and across seeds where there are several:
:mod:`jcxr.train.compare`), ``splits/`` (every label's records per split, or per fold),
``figures/``, ``report.html`` and W&B runs. With k-fold cross-validation every cell trains
once per fold and the comparisons use the folds' pooled out-of-fold predictions
(:mod:`jcxr.train.folds`).
Finished cells (``cells/ID/result.json``) are never rerun. Cells are placed on the devices by
:func:`run_cells`: small ones side by side, one per device; large ones data-parallel.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax

from jcxr._io import atomic_write_text
from jcxr.data.label_data import LabelData
from jcxr.results import Cell, CellResult, Comparison, SweepResult
from jcxr.tracking import Tracker
from jcxr.train import parallel
from jcxr.train.cell import check_external, train_cell
from jcxr.train.compare import compare_across_seeds, compare_archs, compare_resolutions
from jcxr.train.config import resolutions_for, validate
from jcxr.train.fingerprint import check_workdir
from jcxr.train.folds import fold_cells, pool, save_splits
from jcxr.train.inputs import external_phantoms, label_data_for, shards_for
from jcxr.train.observer import reference_observer
from jcxr.train.provenance import cohort, provenance


def run_sweep(
    config, workdir: Path, *, tracker: Tracker | None = None, fresh: bool = False
) -> SweepResult:
    """Train every cell of ``config`` in ``workdir`` (resuming and skipping what is done), then
    compare the resolutions. Work in ``workdir`` made by another config or other shards stops
    the sweep before anything trains (:mod:`jcxr.train.fingerprint`), or with ``fresh`` is
    removed and trained again."""
    validate(config)
    started = time.time()
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"{workdir}: the workdir exists and is not a folder; choose another")
    parallel.initialize(config.parallel.distributed)
    primary = parallel.is_primary()
    workdir.mkdir(parents=True, exist_ok=True)
    if primary:
        atomic_write_text(workdir / "config.json", config.to_json(indent=2))
    tracker = tracker or Tracker(config, workdir, progress=config.logging.progress)
    shard_dir = shards_for(config, workdir, tracker.info)
    # every label's splits before the first step: an unknown label or a split without both
    # classes stops the sweep before any cell trains
    label_data = {label: label_data_for(config, shard_dir, label) for label in config.sweep.labels}
    if config.eval.external == "phantoms":  # the run's own second hospital, prepared here
        config = config.copy_and_resolve_references()
        config.eval.external = str(external_phantoms(config, workdir, tracker.info))
    if config.eval.external:
        check_external(config)
    # the compared cells; with k-fold each pools its folds (which are what trains)
    todo = {
        label: [
            Cell(label, resolution, arch, seed)
            for arch in config.sweep.archs
            for seed in config.sweep.seeds
            for resolution in resolutions_for(config, arch)
        ]
        for label in config.sweep.labels
    }
    folds = config.data.folds
    trained = {label: [f for c in cs for f in fold_cells(c, folds)] for label, cs in todo.items()}
    everything = [c for label in todo for c in dict.fromkeys(todo[label] + trained[label])]
    check_workdir(config, everything, shard_dir, workdir, fresh=fresh, write=primary,
                  log=tracker.info)  # fmt: skip
    cells, comparisons, detail, between = [], {}, [], []
    for label, data in label_data.items():
        tracker.info(data.describe())
        if primary:
            save_splits(workdir, data)
        results = run_cells(config, trained[label], data, shard_dir, workdir, tracker)
        for arch in config.sweep.archs:
            per_seed = []
            for seed in config.sweep.seeds:
                mine = [c for c in todo[label] if c.arch == arch and c.seed == seed]
                for c in mine:
                    if folds:
                        each = [results[f] for f in fold_cells(c, folds)]
                        cells += each
                        results[c] = pool(workdir, c, each, data, write=primary)
                    cells.append(results[c])
                done = [c for c in mine if results[c].done]
                if done and primary:  # predictions are on process 0's disk
                    per_seed.append(compare_resolutions(config, workdir, done, data))
                    if folds and "test" in data.splits:  # the fold ensembles on the test set
                        detail.append(compare_resolutions(config, workdir, done, data, "test"))
            detail += per_seed
            summary = per_seed[0] if per_seed else None
            if len(config.sweep.seeds) > 1 and per_seed:
                summary = _across_seeds(config, workdir, todo[label], results, arch, data,
                                        summary) or summary  # fmt: skip
                detail.append(summary)
            if arch == config.sweep.archs[0] and summary is not None:
                comparisons[label] = summary
        if primary and len(config.sweep.archs) > 1:
            between += _between_archs(config, workdir, todo[label], results, data)
    cohorts = {label: cohort(data) for label, data in label_data.items()}
    observers = {}
    for label, comp in comparisons.items():
        observer = reference_observer(config, shard_dir, label_data[label], comp)
        if observer is not None:
            observers[label] = observer
    result = SweepResult(config.name, tuple(cells), comparisons, tuple(detail), cohorts,
                         provenance(config, started, time.time()), observers,
                         tuple(between))  # fmt: skip
    if primary:
        result.save(workdir)
        if config.eval.localise:
            _localise(config, workdir, shard_dir, tracker.info)
        from jcxr.report import build_report

        report, figures = build_report(workdir)
        tracker.summary_run(result, figures, report)
        tracker.close()
    if jax.process_count() > 1:
        # Every process waits for process 0's writing: one that exits first would otherwise
        # time out in jax.distributed's shutdown barrier while process 0 builds the report.
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("jcxr: sweep written")
    return result


def _between_archs(config, workdir, todo, results, data) -> list[dict]:
    """The architectures compared at every (resolution, seed) where two or more finished."""
    out = []
    for resolution in config.sweep.resolutions:
        for seed in config.sweep.seeds:
            done = [c for c in todo if c.resolution == resolution and c.seed == seed
                    and results[c].done]  # fmt: skip
            if len(done) > 1:
                out.append(compare_archs(config, workdir, done, data))
    return out


def _localise(config, workdir: Path, shard_dir: Path, log) -> None:
    """Where each cell looks, scored against boxes (:mod:`jcxr.train.localise`), if the data
    has any."""
    from jcxr.data import nih
    from jcxr.train.localise import data_root_of, localise

    root = data_root_of(config, shard_dir, workdir)
    if not nih.read_boxes(root):
        log(f"localisation: no box file under {root}; skipped")
        return
    localise(workdir, images=config.eval.localise_images, log=log)


def _across_seeds(config, workdir, todo, results, arch, data, first) -> Comparison | None:
    """The seed-aware comparison over the resolutions every seed finished (None if fewer
    than two resolutions did); the test-set size for 80% power is the first seed's."""
    seeds = tuple(config.sweep.seeds)
    mine = [c for c in todo if c.arch == arch]
    complete = [r for r in dict.fromkeys(c.resolution for c in mine)
                if all(results[c].done for c in mine if c.resolution == r)]  # fmt: skip
    if len(complete) < 2:
        return None
    cells = [c for c in mine if c.resolution in complete]
    return compare_across_seeds(config, workdir, cells, data, seeds, first.power_80)


def placement(config, cell: Cell, local_devices: int) -> str:
    """ "per_device" or "data_parallel" for ``cell`` (see config.parallel.placement)."""
    if jax.process_count() > 1 or local_devices == 1:
        return "data_parallel"  # one device, or several processes: every cell uses them all
    if config.parallel.placement != "auto":
        return config.parallel.placement
    return "per_device" if cell.resolution < config.parallel.per_device_below else "data_parallel"


def run_cells(
    config, cells: list[Cell], data: LabelData, shard_dir: Path, workdir: Path, tracker: Tracker
) -> dict[Cell, CellResult]:
    """Train ``cells``: the per-device ones side by side (one worker thread per device, each
    taking the next cell when it finishes one), then the data-parallel ones one after another
    on every device. Returns {cell: result}; finished cells are read back, never rerun."""
    local = jax.local_devices()
    if config.parallel.devices:
        local = local[: config.parallel.devices]
    everywhere = parallel.make_mesh(local if jax.process_count() == 1 else None)
    side = [c for c in cells if placement(config, c, len(local)) == "per_device"]
    results = {}

    def train(cell: Cell, mesh) -> CellResult:
        task = data if cell.fold is None else data.fold(cell.fold)
        tracker.start_cell(cell, {"positive_weight": task.positive_weight, "devices": mesh.size})
        result = train_cell(config, cell, task, shard_dir, workdir, tracker, mesh=mesh)
        if not result.done:
            tracker.info(f"{cell.id}: FAILED ({result.reason}); the sweep continues")
        tracker.finish_cell(cell, result)
        return result

    if side:
        queue = iter(side)
        lock = threading.Lock()

        def worker(device):
            mesh = parallel.make_mesh([device])
            while True:
                with lock:
                    cell = next(queue, None)
                if cell is None:
                    return
                results[cell] = train(cell, mesh)

        with ThreadPoolExecutor(len(local)) as pool:
            list(pool.map(worker, local[: len(side)]))
    for cell in cells:
        if cell not in results:
            results[cell] = train(cell, everywhere)
    return results
