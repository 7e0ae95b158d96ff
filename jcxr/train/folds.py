"""k-fold cross-validation in a sweep (``config.data.folds = K``): the folds of a cell pooled.

Every (label, resolution, arch, seed) trains K fold cells (``Cell.fold`` = 0..K-1), each
validating on its own fold and selecting its best epoch there; the test set is in no fold. The
pooled cell (``Cell.fold`` None) has no network of its own: it gathers

- ``predictions_oof.npz``: every non-test image (or study) scored once, by the fold model
  that did not train on it (its ``fold`` column says which); the resolutions are compared on
  these;
- ``predictions_test.npz``: the test set scored by the mean probability of the K fold models
  (its ``score`` the logit of that mean; each fold's own test predictions stay in its cell).

Pooling out-of-fold predictions puts K models' scores on one ROC curve: where the folds'
models differ in calibration, the pooled AUC is a little below the folds' mean (docs/methods.md).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from scipy import special

from jcxr import predictions
from jcxr._io import atomic_write_npz, atomic_write_text
from jcxr.convergence import FLAGS
from jcxr.data.label_data import LabelData
from jcxr.data.table import DataError
from jcxr.results import Cell, CellResult
from jcxr.train.evaluate import per_study
from jcxr.train.metrics import binary_metrics


def fold_cells(cell: Cell, folds: int) -> list[Cell]:
    """``cell``'s K fold cells, or ``[cell]`` for a hold-out sweep (``folds`` = 0)."""
    return [dataclasses.replace(cell, fold=k) for k in range(folds)] or [cell]


def splits_path(workdir: Path, label: str, fold: int | None = None) -> Path:
    """``splits/LABEL.npz`` (hold-out) or ``splits/LABEL__fK.npz`` (fold K)."""
    stem = label.replace(" ", "_") + ("" if fold is None else f"__f{fold}")
    return workdir / "splits" / f"{stem}.npz"


def save_splits(workdir: Path, data: LabelData) -> None:
    """The records each cell of ``data.label`` trains, validates and tests on, as the run used
    them (:func:`splits_path`: one file for hold-out, one per fold)."""
    tasks = {None: data} if not data.folds else {k: data.fold(k) for k in range(len(data.folds))}
    (workdir / "splits").mkdir(exist_ok=True)
    for fold, task in tasks.items():
        parts = {split: rows.astype(np.int64) for split, rows in task.splits.items()}
        atomic_write_npz(splits_path(workdir, data.label, fold), parts)


def pool(workdir: Path, cell: Cell, results: list[CellResult], data: LabelData, *,
         write: bool = True) -> CellResult:  # fmt: skip
    """The pooled result of ``cell``'s fold ``results`` (in fold order): out-of-fold metrics
    and the fold ensemble's test metrics; failed if any fold failed. ``write``: save the pooled
    predictions and ``result.json`` in ``cells/ID/`` (process 0 only)."""
    failed = [r.cell.fold for r in results if not r.done]
    if failed:
        return CellResult(cell, status="failed", folds=len(results),
                          reason=f"fold(s) {', '.join(map(str, failed))} failed")  # fmt: skip
    folder = workdir / "cells" / cell.id
    oof = _out_of_fold(workdir, results, data)
    splits = {"oof": _metrics(oof)}
    test = None
    if (workdir / "cells" / results[0].cell.id / "predictions_test.npz").is_file():
        test, per_fold = _ensemble(workdir, results)
        splits["test"] = _metrics(test)
        splits["test_each_fold"] = {"auc_mean": float(np.mean(per_fold)),
                                    "auc_sd": float(np.std(per_fold, ddof=1)),
                                    "auc_min": float(np.min(per_fold)),
                                    "auc_max": float(np.max(per_fold))}  # fmt: skip
    result = CellResult(
        cell,
        status="done",
        folds=len(results),
        steps=sum(r.steps or 0 for r in results),
        microbatch_size=results[0].microbatch_size,
        seconds=sum(r.seconds or 0.0 for r in results),
        metrics=splits["oof"],
        splits=splits,
        flags=tuple(f for f in FLAGS if any(f in r.flags for r in results)),
    )
    result = CellResult.from_json(result.to_json())
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_npz(folder / "predictions_oof.npz", oof)
        if test is not None:
            atomic_write_npz(folder / "predictions_test.npz", test)
        atomic_write_text(folder / "result.json", json.dumps(result.to_json(), indent=2))
    return result


def _out_of_fold(workdir: Path, results: list[CellResult], data: LabelData) -> dict:
    """Every fold's validation predictions, by record; each record exactly once."""
    parts = [_load(workdir, r.cell, "val") for r in results]
    columns = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    columns["fold"] = np.concatenate(
        [
            np.full(len(p["record"]), r.cell.fold, np.int32)
            for p, r in zip(parts, results, strict=True)
        ]
    )
    order = np.argsort(columns["record"], kind="stable")
    columns = {name: values[order] for name, values in columns.items()}
    expected = np.sort(np.concatenate(data.folds))
    if data.studies is not None:  # a study's record is its lowest (evaluate.per_study)
        expected = per_study(data.studies[expected], expected)[0]
    if not np.array_equal(columns["record"], expected):
        raise DataError(
            f"{results[0].cell.pooled().id}: the folds' validation predictions cover "
            f"{len(columns['record'])} records, expected each of the {len(expected)} non-test "
            "records once; a fold was trained on other splits (rerun with --fresh)"
        )
    return columns


def _ensemble(workdir: Path, results: list[CellResult]) -> tuple[dict, list[float]]:
    """The test set scored by the folds' mean probability, and each fold's own test AUC."""
    parts = [_load(workdir, r.cell, "test") for r in results]
    first = parts[0]
    for r, p in zip(results, parts, strict=True):
        if not np.array_equal(p["record"], first["record"]):
            raise DataError(f"{r.cell.id}: scored other test records than {results[0].cell.id}")
    score = predictions.mean_probability_logit(np.stack([p["score"] for p in parts]), axis=0)
    per_fold = [float(r.splits["test"]["auc"]) for r in results]
    return predictions.columns(first["record"], first["label"], score), per_fold


def _load(workdir: Path, cell: Cell, split: str) -> dict:
    path = workdir / "cells" / cell.id / f"predictions_{split}.npz"
    with np.load(path) as saved:
        out = predictions.columns(saved["record"], saved["label"], predictions.scores_of(saved))
    order = np.argsort(out["record"], kind="stable")
    return {name: values[order] for name, values in out.items()}


def _metrics(columns: dict) -> dict:
    """Metrics of pooled predictions; the loss is the binary cross-entropy of their scores."""
    labels, scores = columns["label"].astype(np.float64), columns["score"]
    loss = -np.mean(labels * special.log_expit(scores) + (1 - labels) * special.log_expit(-scores))
    return binary_metrics(labels, scores, float(loss))
