"""A sweep's report: figures (PNG + SVG) and one self-contained HTML file, from what the run
wrote in its workdir (``config.json``, ``results.json``, each cell's predictions, the shards).

Sections: the answer per finding, what the network sees, the comparisons (every AUC labelled
with its split and unit), ROC curves, training curves, the cells, methods and provenance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jcxr._io import atomic_write_text
from jcxr.predictions import scores_of
from jcxr.report import figures as fig
from jcxr.report.html import page
from jcxr.results import Cell, SweepResult

EXAMPLES = 3  # test images per label in "what the network sees"


def build_report(workdir: str | Path) -> tuple[Path, list[Path]]:
    """Write ``figures/*.png`` (+ ``.svg``) and ``report.html`` (images embedded)."""
    workdir = Path(workdir)
    results = SweepResult.load(workdir)
    config_path = workdir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    out = workdir / "figures"
    out.mkdir(exist_ok=True)
    figures: dict[str, list[Path]] = {"overview": [], "seen": [], "roc": [], "training": [],
                                      "pvalues": []}  # fmt: skip
    examples = {}
    if results.comparisons:
        reference = config.get("eval", {}).get("reference_resolution", 320)
        figures["overview"] += [
            fig.auc_vs_resolution(results, out / "auc_vs_resolution.png"),
            fig.auc_ratio(results, reference, out / "auc_ratio.png"),
        ]
    shard_dir = _shard_dir(config, workdir)
    manifest = _manifest(shard_dir)
    for label, comp in results.comparisons.items():
        name = label.replace(" ", "_")
        figures["pvalues"].append(fig.pvalue_heatmap(comp, out / f"pvalues_{name}.png"))
        predictions = _predictions(workdir, results, comp)
        if predictions:
            figures["roc"].append(fig.roc_curves(comp, predictions, out / f"roc_{name}.png"))
        found = _examples(shard_dir, comp, predictions, _data_root(config, manifest))
        if found:
            examples[label] = found["images"]
            figures["seen"].append(fig.what_it_sees(label, found["images"], found["boxes"],
                                                    out / f"seen_{name}.png"))  # fmt: skip
    for label in dict.fromkeys(c.cell.label for c in results.cells):
        mine = [c for c in results.cells if c.cell.label == label and c.history]
        if not mine:  # every cell of the label failed before its first epoch ended
            continue
        name = label.replace(" ", "_")
        figures["training"].append(fig.training_curves(label, mine, out / f"training_{name}.png"))
    explained = workdir / "explain"
    if (explained / "localisation.png").is_file():  # python -m jcxr.explain or eval.localise
        figures["localisation"] = [explained / "localisation.png",
                                   *sorted(explained.glob("grid_*.png"))]  # fmt: skip
        rows = json.loads((explained / "localisation.json").read_text())
    else:
        rows = []
    report = workdir / "report.html"
    atomic_write_text(report, page(results, config, figures, examples, manifest, rows))
    return report, [f for group in figures.values() for f in group]


def _shard_dir(config: dict, workdir: Path) -> Path:
    shards = config.get("data", {}).get("shards")
    return Path(shards) if shards else workdir / "shards"


def _data_root(config: dict, manifest: dict) -> Path | None:
    """Where the source's metadata are: ``data.root``, else where the shards were made from."""
    root = config.get("data", {}).get("root") or manifest.get("inputs", {}).get("root")
    return Path(root) if root else None


def _manifest(shard_dir: Path) -> dict:
    from jcxr.data.shards import read_manifest

    try:
        return read_manifest(shard_dir)
    except Exception:  # moved or deleted shards: the report still builds, without their facts
        return {}


def _predictions(workdir: Path, results: SweepResult, comp) -> dict[int, tuple]:
    """{resolution: (labels, scores, records)} of the comparison's split, for its first seed."""
    seed = comp.seed if comp.seed is not None else comp.seeds[0]
    out = {}
    for r in comp.resolutions:
        cell = Cell(comp.label, r, comp.arch, seed)
        path = workdir / "cells" / cell.id / f"predictions_{comp.split}.npz"
        if not path.is_file():
            return {}
        with np.load(path) as p:
            out[r] = (p["label"], scores_of(p), p["record"])
    return out


def _examples(shard_dir: Path, comp, predictions: dict, data_root: Path | None) -> dict:
    """The same few positive test records at every resolution (the ones the highest resolution
    scores most confidently: the finding is there and findable): ``{"images": {resolution:
    [n, R, R]}, "boxes": [[(x, y, w, h) as fractions of the image side], ...]}``."""
    from jcxr.data.shards import read_headers, read_index, read_pixels

    if not predictions:
        return {}
    labels, scores, records = predictions[max(predictions)]
    positive = np.flatnonzero(labels == 1)
    chosen = records[positive[np.argsort(-scores[positive], kind="stable")[:EXAMPLES]]]
    try:
        images = {r: read_pixels(shard_dir, r, chosen) for r in comp.resolutions}
        ids = read_index(shard_dir, comp.resolutions[0]).image_ids[chosen].tolist()
        headers = read_headers(shard_dir, comp.resolutions[0], chosen)
    except Exception:  # shards gone: the report still builds, without this figure
        return {}
    square = _manifest(shard_dir).get("inputs", {}).get("square", "crop")
    return {"images": images, "boxes": _boxes(data_root, ids, comp.label, headers, square)}


def _boxes(data_root: Path | None, image_ids: list[str], label: str, headers: list[dict],
           square: str) -> list[list[tuple]]:  # fmt: skip
    """Each image's boxes of ``label`` (NIH's BBox_List_2017.csv, or the phantoms' own) as
    fractions of the stored image's side, moved as prepare moved the pixels (its lung crop,
    from the record's header, and its squaring)."""
    from jcxr.data import nih
    from jcxr.explain.metrics import scale_boxes

    empty = [[] for _ in image_ids]
    if data_root is None:
        return empty
    try:
        boxes = nih.read_boxes(data_root)
        sizes = nih.image_sizes(data_root, image_ids) if boxes else {}
    except Exception:  # no metadata where the config says: no boxes, the figure stays
        return empty
    out = []
    for image, header in zip(image_ids, headers, strict=True):
        size = header.get("size") or sizes.get(image)
        drawn = [(b.x, b.y, b.width, b.height) for b in boxes.get(image, []) if b.label == label]
        out.append(scale_boxes(drawn, tuple(size), 1, crop=header.get("crop"), square=square)
                   if size and drawn else [])  # fmt: skip
    return out
