"""A sweep: every (label, resolution, arch, seed) cell, then DeLong across resolutions.

Outputs in the workdir: ``results.json`` / ``results.csv`` (every cell), ``comparisons/`` (the
DeLong result per label, arch and seed), ``figures/``, ``report.html`` and W&B runs.
Finished cells (``cells/ID/result.json``) are never rerun. Cells are placed on the devices by
:func:`run_cells`: small ones side by side, one per device; large ones data-parallel.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np

from jcxr._io import atomic_write_text
from jcxr.data import load_table, phantom, shards
from jcxr.data.table import DataError
from jcxr.stats import delong
from jcxr.train import parallel
from jcxr.train.cell import Cell, label_data, train_cell
from jcxr.train.config import validate
from jcxr.train.tracking import Tracker


def prepare_data(config, workdir: Path, log) -> Path:
    """The shards for this config, making phantoms and shards first where the config allows."""
    d = config.data
    out = Path(d.shards) if d.shards else workdir / "shards"
    wanted = sorted(set(config.sweep.resolutions))
    # Shards the sweep makes for itself from phantoms must be of the phantoms it would make now
    # (count, seed, drawing version); shards named by config.data.shards are used as they are.
    own = d.source == "phantom" and d.prepare_if_missing and not d.shards
    made_from = phantom.signature(d.phantom_images, d.phantom_seed) if own else None
    manifest = shards.read_manifest(out) if (out / shards.MANIFEST).is_file() else None
    current = manifest is not None and (not own or manifest.get("phantoms") == made_from)
    if current:
        if set(wanted) <= set(manifest["resolutions"]):
            return out
        wanted = sorted(set(wanted) | set(manifest["resolutions"]))  # keep the ones there
    if d.source == "padchest":
        raise DataError(
            "config.data.source = 'padchest': jcxr has no PadChest/OpenI source yet; "
            "seed 002's recipe cannot run until one is added"
        )
    if not d.prepare_if_missing:
        raise DataError(
            f"{out}: no shards at {wanted} px. Prepare them once with\n  python -m jcxr.data "
            f"prepare --source {d.source} --root {d.root or 'DATASET_ROOT'} --resolutions "
            f"{','.join(map(str, wanted))} --out {out}\nand set config.data.shards={out}"
        )
    root = Path(d.root) if d.root else workdir / "phantoms"
    if d.source == "phantom":
        log.info(f"phantoms: {d.phantom_images} images in {root}")
        phantom.generate(root, d.phantom_images, seed=d.phantom_seed)
    table = load_table(d.source, root)
    if own and manifest is not None and not current:
        _discard_stale_phantom_shards(out, manifest, table.csv_sha256, log)
    log.info(f"shards: {len(table)} images at {wanted} px -> {out}")
    shards.prepare(
        table,
        root,
        out,
        wanted,
        method=d.resize,
        progress=config.logging.progress,
        provenance={"phantoms": made_from} if own else None,
    )
    return out


def _discard_stale_phantom_shards(out: Path, manifest: dict, csv_sha256: str, log) -> None:
    """Remove the shards at ``out``, made from other phantoms (another count, seed or drawing
    version) than the sweep would make now.

    Only shards provably made from phantoms are removed: their manifest names phantoms or was
    made from this very phantom CSV. Anything else at ``out`` is someone's data: an error.
    """
    if "phantoms" not in manifest and manifest.get("source_csv_sha256") != csv_sha256:
        raise DataError(
            f"{out} holds shards this sweep did not make (source {manifest.get('source')!r}, "
            "another CSV, no phantom signature); remove them, or set config.data.shards to "
            "use them as they are"
        )
    log.info(
        f"shards at {out} were made from other phantoms ({manifest.get('phantoms')}); remaking"
    )
    for path in sorted(out.glob("res*")):
        shutil.rmtree(path)
    for path in (out / shards.MANIFEST, out / ".skipped.json"):
        path.unlink(missing_ok=True)


def run_sweep(config, workdir: Path, *, tracker: Tracker | None = None) -> dict:
    validate(config)
    parallel.initialize(config.parallel.distributed)
    primary = parallel.is_primary()
    workdir.mkdir(parents=True, exist_ok=True)
    if primary:
        atomic_write_text(workdir / "config.json", config.to_json(indent=2))
    log = tracker or Tracker(config, workdir, progress=config.logging.progress)
    shard_dir = prepare_data(config, workdir, log)
    cells, comparisons, detail = [], {}, []
    for label in config.sweep.labels:
        data = label_data(config, shard_dir, label)
        log.info(
            f"{label}: {len(data.splits['train'])} train / {len(data.splits['val'])} val / "
            f"{len(data.splits.get('test', []))} test images, positive weight "
            f"{data.positive_weight:.3f}"
        )
        todo = [
            Cell(label, resolution, arch, seed)
            for arch in config.sweep.archs
            for seed in config.sweep.seeds
            for resolution in resolutions_for(config, arch)
        ]
        results = run_cells(config, todo, data, shard_dir, workdir, log)
        for arch in config.sweep.archs:
            for seed in config.sweep.seeds:
                mine = [c for c in todo if c.arch == arch and c.seed == seed]
                cells += [results[c] for c in mine]
                done = [c for c in mine if results[c]["status"] == "done"]
                if done and primary:  # predictions are on process 0's disk
                    comparison = compare_resolutions(config, workdir, done)
                    detail.append(comparison)
                    if arch == config.sweep.archs[0] and seed == config.sweep.seeds[0]:
                        comparisons[label] = comparison
    results = {
        "name": config.name,
        "cells": cells,
        "comparisons": comparisons,
        "all_comparisons": detail,
    }
    if primary:
        write_results(workdir, results)
        from jcxr.report import build_report

        report, figures = build_report(workdir)
        log.summary_run(results, figures, report)
        log.close()
    if jax.process_count() > 1:
        # Every process waits for process 0's writing: one that exits first would otherwise
        # time out in jax.distributed's shutdown barrier while process 0 builds the report.
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("jcxr: sweep written")
    return results


def placement(config, cell: Cell, local_devices: int) -> str:
    """ "per_device" or "data_parallel" for ``cell`` (see config.parallel.placement)."""
    if jax.process_count() > 1 or local_devices == 1:
        return "data_parallel"  # one device, or several processes: every cell uses them all
    if config.parallel.placement != "auto":
        return config.parallel.placement
    return "per_device" if cell.resolution < config.parallel.per_device_below else "data_parallel"


def run_cells(config, cells: list[Cell], data, shard_dir: Path, workdir: Path, log) -> dict:
    """Train ``cells``: the per-device ones side by side (one worker thread per device, each
    taking the next cell when it finishes one), then the data-parallel ones one after another
    on every device. Returns {cell: result}; finished cells are read back, never rerun."""
    local = jax.local_devices()
    if config.parallel.devices:
        local = local[: config.parallel.devices]
    everywhere = parallel.make_mesh(local if jax.process_count() == 1 else None)
    side = [c for c in cells if placement(config, c, len(local)) == "per_device"]
    results = {}

    def train(cell: Cell, mesh) -> dict:
        log.start_cell(cell, {"positive_weight": data.positive_weight, "devices": mesh.size})
        result = train_cell(config, cell, data, shard_dir, workdir, log, mesh=mesh)
        if result["status"] != "done":
            log.info(f"{cell.id}: FAILED ({result['reason']}); the sweep continues")
        log.finish_cell(cell, result)
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


def resolutions_for(config, arch: str) -> list[int]:
    """The sweep's resolutions for ``arch``, restricted by ``sweep.only`` where it names arch."""
    pairs = [p.split(":") for p in config.sweep.only]
    listed = [int(r) for a, r in pairs if a == arch]
    return listed or list(config.sweep.resolutions)


def compare_resolutions(config, workdir: Path, cells: list[Cell]) -> dict:
    """DeLong over the resolutions of one (label, arch, seed), on the same images."""
    split = config.eval.compare_on
    first = workdir / "cells" / cells[0].id
    if not (first / f"predictions_{split}.npz").is_file():
        split = "val"
    preds = [np.load(workdir / "cells" / c.id / f"predictions_{split}.npz") for c in cells]
    order = np.argsort(preds[0]["record"])
    records = preds[0]["record"][order]
    scores = {}
    for cell, p in zip(cells, preds, strict=True):
        o = np.argsort(p["record"])
        if not np.array_equal(p["record"][o], records):
            raise DataError(f"{cell.id}: predicted on different images than {cells[0].id}")
        scores[f"{cell.resolution}px"] = p["prob"][o]
    result = delong(preds[0]["label"][order], scores)
    c0 = cells[0]
    strict = result.to_dict()  # strict JSON: infinite z or log10 p become None
    keep = (
        "auc",
        "se",
        "ci",
        "z",
        "p",
        "p_adjusted",
        "log10_p",
        "correction",
        "omnibus",
        "n_positive",
        "n_negative",
    )
    out = {
        "label": c0.label,
        "arch": c0.arch,
        "seed": c0.seed,
        "split": split,
        "resolutions": [c.resolution for c in cells],
        "best_resolution": cells[int(np.argmax(result.auc))].resolution,
        **{k: strict[k] for k in keep},
    }
    directory = workdir / "comparisons"
    directory.mkdir(exist_ok=True)
    name = f"{c0.label.replace(' ', '_')}__{c0.arch}__s{c0.seed}"
    atomic_write_text(directory / f"{name}.json", json.dumps(result.to_dict(), indent=2))
    atomic_write_text(directory / f"{name}.txt", str(result) + "\n")
    return out


CSV_FIELDS = [
    "label",
    "resolution",
    "arch",
    "seed",
    "status",
    "best_epoch",
    "auc",
    "auc_se",
    "accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "loss",
    "youden_threshold",
    "test_auc",
]


def write_results(workdir: Path, results: dict) -> None:
    atomic_write_text(workdir / "results.json", json.dumps(results, indent=2, allow_nan=False))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for c in results["cells"]:
        row = {**c, **c.get("metrics", {})}
        row["test_auc"] = c.get("splits", {}).get("test", {}).get("auc")
        writer.writerow(row)
    atomic_write_text(workdir / "results.csv", buffer.getvalue())


def summary_table(results: dict) -> str:
    """The per-resolution AUC table and DeLong comparison, for the console."""
    lines = []
    for label, comp in results["comparisons"].items():
        lines.append(
            f"\n{label} ({comp['arch']}, seed {comp['seed']}, {comp['split']} set: "
            f"{comp['n_positive']} positive / {comp['n_negative']} negative)"
        )
        lines.append(f"  {'resolution':>10}  {'AUC':>6}  {'DeLong SD':>9}")
        for r, a, s in zip(comp["resolutions"], comp["auc"], comp["se"], strict=True):
            lines.append(f"  {r:>8}px  {a:6.3f}  {s:9.3f}")
        res = comp["resolutions"]
        for i in range(len(res)):
            for j in range(i + 1, len(res)):
                diff = comp["auc"][j] - comp["auc"][i]
                p, adjusted = comp["p"][i][j], comp["p_adjusted"][i][j]
                lines.append(
                    f"  {res[j]}px vs {res[i]}px: dAUC {diff:+.3f}  p = {p:.2g}  "
                    f"({comp['correction']} {adjusted:.2g})"
                )
        lines.append(f"  best resolution: {comp['best_resolution']}px")
    return "\n".join(lines)
