"""A sweep's comparisons: the resolutions of one (label, arch) on the same test images, per
training seed (DeLong) and, with several seeds, across them (:func:`jcxr.stats.compare_seeds`).

The unit of analysis follows ``config.eval.cluster_by``: with "auto", a compared set holding
several images (or studies) of one patient is analysed per patient, with Obuchowski's (1997)
clustered DeLong; otherwise every case is independent. Each comparison also says how large a
test set would detect its best resolution's lead over the reference resolution at 80% power.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from jcxr._io import atomic_write_text
from jcxr.data.label_data import LabelData
from jcxr.data.table import DataError
from jcxr.predictions import scores_of
from jcxr.results import Cell, Comparison
from jcxr.stats import compare_seeds, delong, noninferiority, power
from jcxr.stats.moments import MIN_CLUSTERS_PER_CLASS, clusters_per_class

POWER = 0.8


def compare_resolutions(
    config, workdir: Path, cells: list[Cell], data: LabelData, split: str | None = None
) -> Comparison:
    """DeLong over the resolutions of one (label, arch, seed), on the same images: ``split``,
    by default ``config.eval.compare_on`` (validation where there is no test set), or with
    k-fold cross-validation the pooled out-of-fold predictions ("oof")."""
    split, records, labels, scores = _predictions(config, workdir, cells, data, split)
    clusters, cluster_by, note = cluster_ids(config.eval.cluster_by, data, records, labels)
    names = [f"{c.resolution}px" for c in cells]
    result = delong(labels, np.stack(scores), clusters=clusters, names=names)
    resolutions = [c.resolution for c in cells]
    c0 = cells[0]
    comparison = Comparison.from_delong(
        result, label=c0.label, arch=c0.arch, seed=c0.seed, split=split,
        resolutions=resolutions, case_unit=_case_unit(data), cluster_by=cluster_by,
        power_80=power_to_detect(result, resolutions, config.eval.reference_resolution),
        sufficient=sufficient_resolution(result, resolutions, config.eval),
    )  # fmt: skip
    return _noted_and_written(workdir, comparison, result, note)


def compare_archs(config, workdir: Path, cells: list[Cell], data: LabelData) -> dict:
    """DeLong over the architectures of one (label, resolution, seed) on the same images: the
    paired comparison of models (Cardona Cardenas et al. 2020), Holm-adjusted over the pairs,
    clustered as :func:`compare_resolutions` is. Written to ``comparisons/`` too."""
    split, records, labels, scores = _predictions(config, workdir, cells, data)
    clusters, cluster_by, note = cluster_ids(config.eval.cluster_by, data, records, labels)
    archs = [c.arch for c in cells]
    result = delong(labels, np.stack(scores), clusters=clusters, names=archs)
    c0 = cells[0]
    name = f"{c0.label}__r{c0.resolution}__s{c0.seed}__archs"
    directory = workdir / "comparisons"
    directory.mkdir(exist_ok=True)
    atomic_write_text(directory / f"{name}.json", json.dumps(result.to_dict(), indent=2))
    atomic_write_text(directory / f"{name}.txt", str(result) + "\n")
    return {"label": c0.label, "resolution": c0.resolution, "seed": c0.seed, "split": split,
            "archs": archs, "auc": result.auc.tolist(), "se": result.se.tolist(),
            "p": result.p.tolist(), "p_adjusted": result.p_adjusted.tolist(),
            "correction": result.correction, "unit": f"per {cluster_by}" if cluster_by else
            f"per {_case_unit(data)}", "n_clusters": result.n_clusters, "note": note}  # fmt: skip


def compare_across_seeds(
    config, workdir: Path, cells: list[Cell], data: LabelData, seeds, power_80: dict | None
) -> Comparison:
    """Seed-mean AUC per resolution and every pair's test with test-set and between-seed
    variance; ``cells`` are every (resolution, seed) of one (label, arch), seeds in order."""
    resolutions = sorted({c.resolution for c in cells}, key=[c.resolution for c in cells].index)
    by_key = {(c.resolution, c.seed): c for c in cells}
    ordered = [by_key[r, s] for r in resolutions for s in seeds]
    split, records, labels, scores = _predictions(config, workdir, ordered, data)
    clusters, cluster_by, note = cluster_ids(config.eval.cluster_by, data, records, labels)
    cube = np.stack(scores).reshape(len(resolutions), len(seeds), -1)
    result = compare_seeds(labels, cube, clusters=clusters,
                           names=[f"{r}px" for r in resolutions])  # fmt: skip
    c0 = cells[0]
    comparison = Comparison.from_seeds(
        result, label=c0.label, arch=c0.arch, seeds=seeds, split=split, resolutions=resolutions,
        case_unit=_case_unit(data), cluster_by=cluster_by, power_80=power_80,
        sufficient=sufficient_resolution(result, resolutions, config.eval),
    )  # fmt: skip
    return _noted_and_written(workdir, comparison, result, note)


def cluster_ids(cluster_by: str, data: LabelData, records: np.ndarray, labels: np.ndarray):
    """``(ids (N,), "patient" | "study", note)`` for the compared ``records``; ids and kind
    are None when cases are treated as independent. "auto" clusters by patient when some
    patient has several compared cases (a patient holds studies, so this also covers
    CheXpert's views). Clustered variance needs 2 clusters holding each class: with fewer,
    cases are independent and ``note`` says why (a tiny or extreme test set)."""
    if cluster_by == "none":
        return None, None, ""
    if cluster_by == "study":
        if data.study_ids is None:
            raise DataError(
                "config.eval.cluster_by = 'study', but these shards have no study IDs (only "
                "CheXpert has studies); use 'patient', 'auto' or 'none'"
            )
        ids, kind = data.study_ids[records], "study"
    else:
        if data.patient_ids is None:
            raise DataError("the shards hold no patient IDs; set config.eval.cluster_by = 'none'")
        ids, kind = data.patient_ids[records], "patient"
        if cluster_by == "auto" and np.unique(ids).size == ids.size:
            return None, None, ""
    with_pos, with_neg = clusters_per_class(labels == 1, ids)
    if min(with_pos, with_neg) < MIN_CLUSTERS_PER_CLASS:
        note = (f"per case: only {with_pos} {kind}(s) with a positive and {with_neg} with a "
                f"negative, too few to cluster")  # fmt: skip
        return None, None, note
    return ids, kind, ""


def power_to_detect(result, resolutions: list[int], reference: int) -> dict | None:
    """Cases needed to detect the best resolution's AUC difference from the reference's
    (the highest resolution when the reference was not trained) at 80% power, two-sided
    alpha 0.05, with this test set's case mix and clustering; None for one resolution."""
    if len(resolutions) < 2:
        return None
    ref = resolutions.index(reference) if reference in resolutions else int(np.argmax(resolutions))
    best = int(np.argmax(result.auc))
    out = {"reference": resolutions[ref], "best": resolutions[best], "power": POWER,
           "alpha": 0.05, "delta": float(result.auc[best] - result.auc[ref])}  # fmt: skip
    if best == ref or out["delta"] == 0:
        return {**out, "n_positive": None, "n_negative": None, "n_clusters": None}
    try:
        solved = power(result, pair=(ref, best), power=POWER)
    except ValueError as error:  # e.g. a zero-variance difference: said, not fatal
        return {**out, "n_positive": None, "n_negative": None, "n_clusters": None,
                "reason": str(error)}  # fmt: skip
    cases = result.n_positive + result.n_negative
    needed = solved.n_positive + solved.n_negative
    clusters = None if result.n_clusters is None else result.n_clusters * needed / cases
    return {**out, "n_positive": solved.n_positive, "n_negative": solved.n_negative,
            "n_clusters": clusters}  # fmt: skip


def sufficient_resolution(result, resolutions: list[int], eval_config) -> dict | None:
    """The smallest resolution non-inferior to the reference (``eval.noninferiority_*``): the
    resolutions below the reference are tested from the reference downward. ``smallest`` is
    None when none below it is shown non-inferior; None for one resolution."""
    if len(resolutions) < 2:
        return None
    fixed = eval_config.noninferiority_reference
    ref = resolutions.index(fixed) if fixed in resolutions else int(np.argmax(result.auc))
    below = sorted((r for r in resolutions if r < resolutions[ref]), reverse=True)
    out = {"reference": resolutions[ref], "reference_rule": "fixed" if fixed else "best AUC",
           "margin": float(eval_config.noninferiority_margin), "alpha": 0.05,
           "procedure": eval_config.noninferiority_procedure,
           "smallest": None, "tests": []}  # fmt: skip
    if not below:
        return out
    found = noninferiority(
        result, reference=ref, candidates=[resolutions.index(r) for r in below],
        margin=out["margin"], alpha=out["alpha"], procedure=out["procedure"],
    )  # fmt: skip
    for k, r in enumerate(below):
        out["tests"].append({
            "resolution": r, "diff": float(found.diff[k]),
            "lower_bound": float(found.lower_bound[k]), "p": float(found.pvalue[k]),
            "p_adjusted": float(found.p_adjusted[k]), "non_inferior": bool(found.non_inferior[k]),
        })  # fmt: skip
    passed = [t["resolution"] for t in out["tests"] if t["non_inferior"]]
    out["smallest"] = min(passed) if passed else None
    return out


def _predictions(config, workdir: Path, cells: list[Cell], data: LabelData, split=None):
    """The compared split, the shared records (sorted) and labels, and each cell's scores."""
    if split is None:
        split = "oof" if data.folds else config.eval.compare_on
        if not (workdir / "cells" / cells[0].id / f"predictions_{split}.npz").is_file():
            split = "val"
    preds = [np.load(workdir / "cells" / c.id / f"predictions_{split}.npz") for c in cells]
    order = np.argsort(preds[0]["record"])
    records = preds[0]["record"][order]
    scores = []
    for cell, p in zip(cells, preds, strict=True):
        o = np.argsort(p["record"])
        if not np.array_equal(p["record"][o], records):
            raise DataError(f"{cell.id}: predicted on different images than {cells[0].id}")
        scores.append(scores_of(p)[o])
    return split, records, preds[0]["label"][order], scores


def _case_unit(data: LabelData) -> str:
    return "study" if data.studies is not None else "image"


def _noted_and_written(workdir: Path, comparison: Comparison, result, note: str) -> Comparison:
    """``comparison`` with ``note`` added to its method, after writing ``result`` to
    ``comparisons/NAME.{json,txt}``."""
    if note:
        comparison = dataclasses.replace(comparison, method=f"{comparison.method} ({note})")
    directory = workdir / "comparisons"
    directory.mkdir(exist_ok=True)
    atomic_write_text(directory / f"{comparison.name}.json", json.dumps(result.to_dict(), indent=2))
    atomic_write_text(directory / f"{comparison.name}.txt", str(result) + "\n")
    return comparison
