"""A sweep's cells scored against boxes: where each network looks, at every resolution.

For every finished cell (or the ones named), its best checkpoint maps up to N test images that
hold the cell's finding and have boxes of it (the same images at every resolution); each map,
brought to the input resolution, is scored against the boxes rescaled to it
(:mod:`jcxr.explain.metrics`). A uniform random map's hit rate in the pointing game is the
boxes' share of the image: it is reported beside each hit rate. Writes
``W/explain/localisation.json`` and ``.csv``, ``W/explain/overlays/*.png`` (image, heat map,
boxes) and ``W/explain/localisation.png`` (hit rate against resolution, per finding). Used by
``python -m jcxr.explain`` and, with ``config.eval.localise``, by the sweep.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jcxr import explain
from jcxr._io import atomic_write_text
from jcxr.data import nih
from jcxr.data.shards import read_headers, read_index, read_manifest, read_pixels
from jcxr.explain import metrics
from jcxr.models import normalise
from jcxr.results import SweepResult
from jcxr.train.build import build_steps
from jcxr.train.checkpoints import Checkpoints
from jcxr.train.config import from_json as config_from_json
from jcxr.train.folds import splits_path
from jcxr.train.optim import make_optimizer

OVERLAYS = 4  # per cell


def localise(workdir: Path, *, cells=None, boxes=None, images: int = 16, method=None,
             layer=None, log=print) -> list[dict]:  # fmt: skip
    """Score every chosen cell's maps against the boxes; write the outputs; return the rows.
    ``method`` (a name of :data:`jcxr.explain.MAPS`) and ``layer`` (of
    :func:`jcxr.explain.layers`; "" = the last stage) default to the sweep's config."""
    config = config_from_json((workdir / "config.json").read_text())
    method = method or config.eval.localise_method
    layer = config.eval.localise_layer if layer is None else layer
    results = SweepResult.load(workdir)
    shard_dir = Path(config.data.shards or workdir / "shards")
    data_root = data_root_of(config, shard_dir, workdir)
    found = nih.read_boxes(boxes or data_root)
    if not found:
        raise FileNotFoundError(f"no boxes in {boxes or data_root}: pass --boxes FILE")
    chosen = [c for c in results.cells if c.done and c.cell.fold is None and not c.folds
              and (not cells or c.cell.id in cells)]  # fmt: skip
    square = read_manifest(shard_dir).get("inputs", {}).get("square", "crop")
    out_dir = workdir / "explain"
    (out_dir / "overlays").mkdir(parents=True, exist_ok=True)
    rows = []
    per_label = {}  # the same images, and their file sizes, at every resolution of a label
    grids = {}  # (label, arch) -> {resolution: overlays}, the first seed's
    for result in chosen:
        cell = result.cell
        if cell.label not in per_label:
            per_label[cell.label] = _images_with_boxes(workdir, shard_dir, data_root, cell,
                                                       found, images)  # fmt: skip
        records, ids, sizes = per_label[cell.label]
        if not len(records):
            log(f"{cell.id}: no test image with a {cell.label} box; skipped")
            continue
        model = _best_model(config, workdir, cell)
        pixels = read_pixels(shard_dir, cell.resolution, records)
        heat = heat_maps(model, pixels, method, layer or None)
        headers = read_headers(shard_dir, cell.resolution, records)
        scored, chance = [], []
        first_seed = min(c.cell.seed for c in chosen if c.cell.label == cell.label)
        grid = grids.setdefault((cell.label, cell.arch), {}) if cell.seed == first_seed else {}
        for k, image in enumerate(ids):
            drawn = [(b.x, b.y, b.width, b.height) for b in found[image] if b.label == cell.label]
            header = headers[k]  # a lung-cropped record knows its box and its original's size
            scaled = metrics.scale_boxes(drawn, header.get("size", sizes[image]), cell.resolution,
                                         crop=header.get("crop"), square=square)  # fmt: skip
            scored.append(metrics.localisation(heat[k], scaled))
            chance.append(float(metrics.box_mask(scaled, heat[k].shape).mean()))
            if k < OVERLAYS:
                _overlay(pixels[k], heat[k], scaled, out_dir / "overlays" / f"{cell.id}__{image}")
                grid.setdefault(cell.resolution, []).append((image, pixels[k], heat[k], scaled))
        summary = metrics.summarise(scored)
        rows.append({"label": cell.label, "resolution": cell.resolution, "arch": cell.arch,
                     "seed": cell.seed, "method": method,
                     "layer": layer or explain.layers(model)[-1], **summary,
                     "random_pointing_game": float(np.mean(chance))})  # fmt: skip
        log(f"{cell.id}: pointing game {summary['pointing_game']['mean']:.2f} "
            f"(random map {np.mean(chance):.2f}) on {len(ids)} images")  # fmt: skip
    atomic_write_text(out_dir / "localisation.json", json.dumps(rows, indent=2))
    atomic_write_text(out_dir / "localisation.csv", _csv(rows))
    if rows:
        _figure(rows, out_dir / "localisation.png")
    for old in out_dir.glob("grid_*.png"):  # a rerun on fewer cells leaves no stale grid
        old.unlink()
        old.with_suffix(".svg").unlink(missing_ok=True)
    layer_of = {r["arch"]: r["layer"] for r in rows}
    for (label, arch), grid in grids.items():
        if grid:
            title = f"{label}, {arch}: {method} at {layer_of[arch]} (+: the map's maximum)"
            _grid(grid, title, out_dir / f"grid_{label.replace(' ', '_')}__{arch}.png")
    return rows


BATCH = 16  # images mapped at once: one compiled program per cell, memory bounded


def heat_maps(model, pixels: np.ndarray, method: str, layer: str | None) -> np.ndarray:
    """``[N, R, R]`` uint8 images -> ``[N, R, R]`` maps at input resolution, jit-compiled once
    and run in batches of ``BATCH`` (the last padded)."""
    n, size = len(pixels), pixels.shape[-1]
    padded = np.zeros((-(-n // BATCH) * BATCH, size, size), np.uint8)
    padded[:n] = pixels
    out = [np.asarray(_maps(model, jnp.asarray(padded[i : i + BATCH]), method, layer))
           for i in range(0, len(padded), BATCH)]  # fmt: skip
    return np.concatenate(out)[:n]


@functools.partial(nnx.jit, static_argnames=("method", "layer"))
def _maps(model, pixels, method, layer):
    x = normalise(pixels.astype(jnp.float32) / 255.0)
    return explain.upsample(explain.MAPS[method](model, x, layer=layer), pixels.shape[-1])


def _images_with_boxes(workdir, shard_dir, data_root, cell, found, limit):
    """The first ``limit`` test (else validation) records of ``cell``'s label with a box of it
    (the same at every resolution): the records, their image ids and their files' (width,
    height), which the boxes are in."""
    label = cell.label
    splits = np.load(splits_path(workdir, label))
    records = splits["test"] if "test" in splits.files and len(splits["test"]) else splits["val"]
    ids = read_index(shard_dir, cell.resolution).image_ids
    kept = [r for r in np.sort(records)
            if any(b.label == label for b in found.get(ids[r], []))][:limit]  # fmt: skip
    names = [str(ids[r]) for r in kept]
    sizes = nih.image_sizes(data_root, names)
    missing = [name for name in names if name not in sizes]
    if missing:  # boxes are in the image file's pixels: it must be there
        raise FileNotFoundError(f"{data_root}: no image file {missing[0]} to scale boxes by")
    return np.asarray(kept, np.int64), names, sizes


def _best_model(config, workdir: Path, cell):
    """The cell's network at its best epoch, in eval mode."""
    tx = make_optimizer(config.optim, 1, config.train.epochs)
    steps = build_steps(config, cell, types.SimpleNamespace(positive_weight=1.0), tx,
                        log=lambda *_: None)  # fmt: skip
    best = Checkpoints(workdir / "cells" / cell.id, "best", keep=2, log=lambda *_: None)
    best.restore(steps)
    best.close()
    return nnx.merge(steps.eval_graph, jax.device_get(steps.params), jax.device_get(steps.others))


def _overlay(grey, heat, boxes, path: Path) -> None:
    from jcxr.report.figures import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3, 3))
    _draw(ax, grey, heat, boxes)
    ax.set_axis_off()
    save(fig, path.with_suffix(".png"))


def _draw(ax, grey, heat, boxes) -> None:
    """The image, its heat map over it, the boxes (green) and the map's maximum (white +)."""
    from matplotlib.patches import Rectangle

    ax.imshow(grey, cmap="gray")
    ax.imshow(heat, cmap="jet", alpha=0.4)
    for x, y, w, h in boxes:
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, color="lime", lw=1.5))
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    ax.plot(col, row, marker="+", color="white", markersize=8, mew=1.5)


def _grid(grid: dict, title: str, path: Path) -> None:
    """Overlays of the same images (rows) at every resolution (columns)."""
    from jcxr.report.figures import pyplot, save

    plt = pyplot()
    resolutions = sorted(grid)
    n = max(len(grid[r]) for r in resolutions)
    fig, axes = plt.subplots(n, len(resolutions), figsize=(2.2 * len(resolutions), 2.2 * n),
                             squeeze=False)  # fmt: skip
    for col, resolution in enumerate(resolutions):
        for row, (image, grey, heat, boxes) in enumerate(grid[resolution]):
            ax = axes[row, col]
            _draw(ax, grey, heat, boxes)
            if row == 0:
                ax.set_title(f"{resolution} px", fontsize=9)
            if col == 0:
                ax.text(-0.05, 0.5, image, transform=ax.transAxes, rotation=90, fontsize=7,
                        ha="right", va="center")  # fmt: skip
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    save(fig, path)


def _figure(rows, path: Path) -> None:
    from jcxr.report.figures import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label in dict.fromkeys(r["label"] for r in rows):
        mine = sorted((r for r in rows if r["label"] == label), key=lambda r: r["resolution"])
        x = [r["resolution"] for r in mine]
        y = [r["pointing_game"]["mean"] for r in mine]
        err = np.abs(np.array([r["pointing_game"]["ci"] for r in mine]).T - y)
        line = ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"{label}")
        ax.plot(x, [r["random_pointing_game"] for r in mine], linestyle=":",
                color=line[0].get_color(), label=f"{label}: a random map")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("input resolution (px)")
    ax.set_ylabel("pointing game hit rate (95% CI)")
    ax.set_ylim(0, 1)
    ax.set_title("Where the network looks, by resolution")
    ax.legend(fontsize=8)
    save(fig, path)


def _csv(rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "resolution", "arch", "seed", "method", "layer", "n", "pointing_game",
                     "pointing_game_low", "pointing_game_high", "random_pointing_game",
                     "energy", "iou"])  # fmt: skip
    for r in rows:
        hits = r["pointing_game"]
        writer.writerow([r["label"], r["resolution"], r["arch"], r["seed"], r["method"], r["layer"],
                         r["n"],
                         hits["mean"], *hits["ci"], r["random_pointing_game"],
                         r["energy"]["mean"], r["iou"]["mean"]])  # fmt: skip
    return buffer.getvalue()


def data_root_of(config, shard_dir: Path, workdir: Path) -> Path:
    """Where the images and their box file are: ``data.root``, else where the shards were made
    from, else the phantoms' default folder."""
    if config.data.root:
        return Path(config.data.root)
    try:
        return Path(read_manifest(shard_dir)["inputs"]["root"])
    except (OSError, KeyError, ValueError):
        return workdir / "phantoms"
