"""What a sweep produces, as types: a cell's result, a label's comparison across resolutions,
and the sweep's whole result. The sweep builds them; the console, the CSV, the HTML report and
W&B read them. Each has ``to_json()`` / ``from_json()`` (strict JSON: non-finite -> null), and
``results.json`` is ``SweepResult.to_json()``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from jcxr._io import atomic_write_text, json_ready

# metrics are open-ended name -> value maps (jcxr.train.metrics.binary_metrics names them)
Metrics = dict[str, float | None]


@dataclasses.dataclass(frozen=True)
class Cell:
    """One network of a sweep: (label, resolution, architecture, training seed), and with k-fold
    cross-validation (``config.data.folds``) its fold. A cell without a fold in a k-fold sweep
    is the folds pooled: their out-of-fold predictions, no network of its own."""

    label: str
    resolution: int
    arch: str
    seed: int
    fold: int | None = None

    @property
    def id(self) -> str:
        fold = "" if self.fold is None else f"__f{self.fold}"
        return (
            f"{self.label.replace(' ', '_')}__{self.arch}__r{self.resolution}__s{self.seed}{fold}"
        )

    def pooled(self) -> Cell:
        """The cell of every fold pooled (this cell without its fold)."""
        return dataclasses.replace(self, fold=None)


@dataclasses.dataclass(frozen=True)
class CellResult:
    """A trained (``status="done"``) or failed cell.

    ``metrics`` are the validation metrics at the best epoch (chosen by validation AUC);
    ``splits`` every evaluated split's metrics at that epoch; ``history`` one entry per epoch
    (validation metrics, ``train_loss`` and ``epoch``). The folds of a k-fold cell pooled
    (``folds`` = K): ``metrics`` are those of the out-of-fold predictions (``splits["oof"]``),
    ``splits["test"]`` the test set scored by the folds' mean probability.
    """

    cell: Cell
    status: str  # "done" or "failed"
    reason: str | None = None  # why it failed
    best_epoch: int | None = None
    positive_weight: float | None = None
    train_images: int | None = None
    steps: int | None = None
    microbatch_size: int | None = None
    devices: tuple[str, ...] = ()
    seconds: float | None = None
    metrics: Metrics = dataclasses.field(default_factory=dict)
    splits: dict[str, Metrics] = dataclasses.field(default_factory=dict)
    history: tuple[Metrics, ...] = ()
    folds: int | None = None  # K: this result pools K folds' out-of-fold predictions
    flags: tuple[str, ...] = ()  # convergence flags (jcxr.convergence); a pool's: its folds'

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def fold_text(self) -> str:
        """The fold column of the tables: "pooled", the fold, or "" for a hold-out cell."""
        if self.folds:
            return "pooled"
        return "" if self.cell.fold is None else str(self.cell.fold)

    def to_json(self) -> dict:
        """The cell's fields flat, then the rest; fields without a value are left out."""
        out = {k: v for k, v in dataclasses.asdict(self.cell).items() if v is not None}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name != "cell" and value not in (None, (), {}):
                out[field.name] = value
        return json_ready(out)

    @classmethod
    def from_json(cls, data: dict) -> CellResult:
        cell = Cell(data["label"], data["resolution"], data["arch"], data["seed"], data.get("fold"))
        kept = {f.name for f in dataclasses.fields(cls)} - {"cell"}
        values = {k: v for k, v in data.items() if k in kept}
        values["devices"] = tuple(values.get("devices", ()))
        values["history"] = tuple(values.get("history", ()))
        values["flags"] = tuple(values.get("flags", ()))
        return cls(cell=cell, **values)


@dataclasses.dataclass(frozen=True)
class Pair:
    """One resolution pair of a comparison, ``high`` against ``low`` (``high`` > ``low`` px)."""

    low: int
    high: int
    difference: float  # AUC(high) - AUC(low)
    p: float
    p_adjusted: float


SPLIT_TEXT = {"test": "test set", "val": "validation set", "oof": "out-of-fold (k-fold)"}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The resolutions of one (label, arch) compared on the same images: one training seed's
    networks (DeLong), or every seed's (``seed`` None, ``seeds`` listed: seed-mean AUCs with
    test-set and between-seed variance, :func:`jcxr.stats.compare_seeds`).

    Per resolution (in ``resolutions`` order): ``auc``, ``se`` (its SD) and ``ci``; per pair
    ``[i][j]``: ``z`` (row minus column; t with seeds), ``p``, ``p_adjusted`` (``correction``
    across every pair) and ``log10_p`` (finite where p underflows); ``omnibus``: the test that
    all AUCs are equal (one seed only). The unit of analysis: a case is an image or a study
    (``case_unit``); cases are independent or clustered (``cluster_by`` patient or study, into
    ``n_clusters``). ``sufficient``: the smallest resolution non-inferior to the reference
    within a margin (:func:`jcxr.stats.noninferiority`). ``power_80``: the test-set size that
    would detect the observed difference between the best and the reference resolution at 80%
    power. Non-finite values are ``None``
    (strict JSON).
    """

    label: str
    arch: str
    seed: int | None
    # the split compared: "test", "val" where there is no test set, or "oof": k-fold's pooled
    # out-of-fold predictions
    split: str
    resolutions: tuple[int, ...]
    auc: tuple[float, ...]
    se: tuple[float, ...]
    ci: tuple[tuple[float, float], ...]
    z: tuple[tuple[float | None, ...], ...]
    p: tuple[tuple[float, ...], ...]
    p_adjusted: tuple[tuple[float, ...], ...]
    log10_p: tuple[tuple[float | None, ...], ...]
    correction: str
    omnibus: dict | None
    n_positive: int
    n_negative: int
    case_unit: str = "image"  # what one compared case is: "image", or "study" (max over views)
    cluster_by: str | None = None  # "patient" or "study" clusters; None: independent cases
    n_clusters: int | None = None
    method: str = "DeLong"
    seeds: tuple[int, ...] = ()  # every seed, when seed is None
    seed_sd: tuple[float, ...] | None = None  # between-seed SD of each resolution's AUC
    power_80: dict | None = None
    sufficient: dict | None = None  # the smallest sufficient resolution (non-inferiority)

    @classmethod
    def from_delong(cls, result, *, label: str, arch: str, seed: int, split: str, resolutions,
                    **unit_and_answers) -> Comparison:  # fmt: skip
        """From a :class:`jcxr.stats.DeLongResult` whose models are ``resolutions`` in order;
        ``unit_and_answers``: ``case_unit``, ``cluster_by``, ``power_80``, ``sufficient``."""
        clustered = unit_and_answers.get("cluster_by") is not None
        method = "clustered DeLong (Obuchowski 1997)" if clustered else "DeLong"
        fields = dict(label=label, arch=arch, seed=seed, split=split, resolutions=resolutions,
                      method=method, **unit_and_answers)  # fmt: skip
        return cls.from_json({**result.to_dict(), **json_ready(fields)})  # inf z -> None

    @classmethod
    def from_seeds(cls, result, *, label: str, arch: str, seeds, split: str, resolutions,
                   **unit_and_answers) -> Comparison:  # fmt: skip
        """From a :class:`jcxr.stats.SeedComparison` over ``resolutions`` x ``seeds``."""
        low, high = result.auc_confidence_interval(0.95)
        with np.errstate(divide="ignore"):
            log10_p = np.log10(result.pvalue)
        data = json_ready(dict(
            label=label, arch=arch, seed=None, split=split, resolutions=resolutions,
            auc=result.auc, se=result.se, ci=np.stack([low, high], -1), z=result.statistic,
            p=result.pvalue, p_adjusted=result.p_adjusted, log10_p=log10_p,
            correction=result.correction, omnibus=None, n_positive=result.n_positive,
            n_negative=result.n_negative, n_clusters=result.n_clusters, method=result.method,
            seeds=list(seeds), seed_sd=result.seed_sd, **unit_and_answers,
        ))  # fmt: skip
        return cls.from_json(data)

    @property
    def name(self) -> str:
        """File stem of this comparison: ``LABEL__ARCH__sSEED`` (``__seeds0-1-2``: all seeds)."""
        tail = (
            f"s{self.seed}" if self.seed is not None else "seeds" + "-".join(map(str, self.seeds))
        )
        split = "__oof" if self.split == "oof" else ""  # k-fold: the out-of-fold comparison
        return f"{self.label.replace(' ', '_')}__{self.arch}__{tail}{split}"

    @property
    def seed_text(self) -> str:
        """ "seed 0", or "5 seeds (0-4)"."""
        if self.seed is not None:
            return f"seed {self.seed}"
        return f"{len(self.seeds)} seeds ({', '.join(map(str, self.seeds))})"

    @property
    def split_text(self) -> str:
        """The compared predictions in words: "test set", "validation set", or "out-of-fold
        (k-fold)" for k-fold's pooled validation predictions."""
        return SPLIT_TEXT.get(self.split, f"{self.split} set")

    @property
    def unit_text(self) -> str:
        """The unit of analysis in words, e.g. "per patient: 212 patients, 300 images"."""
        cases = f"{self.n_positive + self.n_negative} {self.case_unit}s"
        if self.cluster_by is None:
            return f"per {self.case_unit}: {cases}, each independent"
        return f"per {self.cluster_by}: {self.n_clusters} {self.cluster_by}s, {cases}"

    @property
    def sufficient_resolution(self) -> int | None:
        """The answer: the smallest resolution non-inferior to the reference, or the reference
        itself when none below it is (None without a non-inferiority analysis)."""
        if self.sufficient is None:
            return None
        return self.sufficient["smallest"] or self.sufficient["reference"]

    @property
    def best_resolution(self) -> int:
        """The resolution with the highest AUC point estimate (the first of any tie)."""
        return self.resolutions[max(range(len(self.auc)), key=self.auc.__getitem__)]

    def pairs(self) -> list[Pair]:
        """Every pair, each higher resolution against each lower one, in ``resolutions`` order."""
        r = self.resolutions
        return [
            Pair(r[i], r[j], self.auc[j] - self.auc[i], self.p[i][j], self.p_adjusted[i][j])
            for i in range(len(r))
            for j in range(i + 1, len(r))
        ]

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["best_resolution"] = self.best_resolution  # derived; kept for readers of the JSON
        return json_ready(out)

    @classmethod
    def from_json(cls, data: dict) -> Comparison:
        def rows(value):
            return tuple(tuple(row) for row in value)

        return cls(
            label=data["label"],
            arch=data["arch"],
            seed=None if data["seed"] is None else int(data["seed"]),
            split=data["split"],
            resolutions=tuple(int(r) for r in data["resolutions"]),
            auc=tuple(data["auc"]),
            se=tuple(data["se"]),
            ci=rows(data["ci"]),
            z=rows(data["z"]),
            p=rows(data["p"]),
            p_adjusted=rows(data["p_adjusted"]),
            log10_p=rows(data["log10_p"]),
            correction=data["correction"],
            omnibus=data.get("omnibus"),
            n_positive=int(data["n_positive"]),
            n_negative=int(data["n_negative"]),
            case_unit=data.get("case_unit", "image"),
            cluster_by=data.get("cluster_by"),
            n_clusters=data.get("n_clusters"),
            method=data.get("method", "DeLong"),
            seeds=tuple(data.get("seeds", ())),
            seed_sd=None if data.get("seed_sd") is None else tuple(data["seed_sd"]),
            power_80=data.get("power_80"),
            sufficient=data.get("sufficient"),
        )


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Every cell, and the comparisons: ``comparisons`` holds one per label (its first arch,
    across every seed where there are several, else its one seed: what the summary shows),
    ``all_comparisons`` every (label, arch, seed) and every (label, arch) across seeds."""

    name: str
    cells: tuple[CellResult, ...]
    comparisons: dict[str, Comparison]
    all_comparisons: tuple[Comparison, ...] = ()
    cohorts: dict = dataclasses.field(default_factory=dict)  # label -> split sizes, positives
    provenance: dict = dataclasses.field(default_factory=dict)  # code, config hash, machine
    # label -> the phantoms' reference observer on the compared images (jcxr.data.phantom_observer)
    observers: dict = dataclasses.field(default_factory=dict)
    # the architectures of each (label, resolution, seed) compared on the same images
    # (jcxr.train.compare.compare_archs)
    between_archs: tuple[dict, ...] = ()

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "cells": [c.to_json() for c in self.cells],
            "comparisons": {label: c.to_json() for label, c in self.comparisons.items()},
            "all_comparisons": [c.to_json() for c in self.all_comparisons],
            "cohorts": json_ready(self.cohorts),
            "provenance": json_ready(self.provenance),
            "observers": json_ready(self.observers),
            "between_archs": json_ready(list(self.between_archs)),
        }

    @classmethod
    def from_json(cls, data: dict) -> SweepResult:
        return cls(
            name=data["name"],
            cells=tuple(CellResult.from_json(c) for c in data["cells"]),
            comparisons={k: Comparison.from_json(v) for k, v in data["comparisons"].items()},
            all_comparisons=tuple(Comparison.from_json(c) for c in data.get("all_comparisons", ())),
            cohorts=data.get("cohorts", {}),
            provenance=data.get("provenance", {}),
            observers=data.get("observers", {}),
            between_archs=tuple(data.get("between_archs", ())),
        )

    @classmethod
    def load(cls, workdir: str | Path) -> SweepResult:
        path = Path(workdir) / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{workdir}: no results.json; run the sweep first")
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path}: not a jcxr results file ({type(error).__name__}: {error}); it was cut "
                "short or edited. Rerun the sweep (finished cells are read back, not retrained)"
            ) from None

    def save(self, workdir: Path) -> None:
        """``results.json`` (everything) and ``results.csv`` (a row per cell)."""
        text = json.dumps(self.to_json(), indent=2, allow_nan=False)
        atomic_write_text(workdir / "results.json", text)
        atomic_write_text(workdir / "results.csv", cells_csv(self.cells))


CSV_FIELDS = (
    "label",
    "resolution",
    "arch",
    "seed",
    "fold",
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
    "flags",
)


def cells_csv(cells) -> str:
    """The CSV view: one row per cell, validation metrics at the best epoch and the test AUC;
    with k-fold cross-validation a row per fold and one per pooled cell (fold "pooled":
    out-of-fold metrics and the fold ensemble's test AUC)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for c in cells:
        row = {**dataclasses.asdict(c.cell), "status": c.status, "best_epoch": c.best_epoch,
               "fold": c.fold_text,
               **c.metrics, "test_auc": c.splits.get("test", {}).get("auc"),
               "flags": " ".join(c.flags)}  # fmt: skip
        writer.writerow(row)
    return buffer.getvalue()
