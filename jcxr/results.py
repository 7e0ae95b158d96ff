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

from jcxr._io import atomic_write_text, json_ready

# metrics are open-ended name -> value maps (jcxr.train.metrics.binary_metrics names them)
Metrics = dict[str, float | None]


@dataclasses.dataclass(frozen=True)
class Cell:
    """One network of a sweep: (label, resolution, architecture, training seed)."""

    label: str
    resolution: int
    arch: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.label.replace(' ', '_')}__{self.arch}__r{self.resolution}__s{self.seed}"


@dataclasses.dataclass(frozen=True)
class CellResult:
    """A trained (``status="done"``) or failed cell.

    ``metrics`` are the validation metrics at the best epoch (chosen by validation AUC);
    ``splits`` every evaluated split's metrics at that epoch; ``history`` one entry per epoch
    (validation metrics, ``train_loss`` and ``epoch``).
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

    @property
    def done(self) -> bool:
        return self.status == "done"

    def to_json(self) -> dict:
        """The cell's fields flat, then the rest; fields without a value are left out."""
        out = dataclasses.asdict(self.cell)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name != "cell" and value not in (None, (), {}):
                out[field.name] = value
        return json_ready(out)

    @classmethod
    def from_json(cls, data: dict) -> CellResult:
        cell = Cell(data["label"], data["resolution"], data["arch"], data["seed"])
        kept = {f.name for f in dataclasses.fields(cls)} - {"cell"}
        values = {k: v for k, v in data.items() if k in kept}
        values["devices"] = tuple(values.get("devices", ()))
        values["history"] = tuple(values.get("history", ()))
        return cls(cell=cell, **values)


@dataclasses.dataclass(frozen=True)
class Pair:
    """One resolution pair of a comparison, ``high`` against ``low`` (``high`` > ``low`` px)."""

    low: int
    high: int
    difference: float  # AUC(high) - AUC(low)
    p: float
    p_adjusted: float


@dataclasses.dataclass(frozen=True)
class Comparison:
    """DeLong's test across the resolutions of one (label, arch, seed), on the same images.

    Per resolution (in ``resolutions`` order): ``auc``, ``se`` (DeLong SD) and ``ci``; per pair
    ``[i][j]``: ``z`` (row minus column), ``p``, ``p_adjusted`` (``correction`` across every
    pair) and ``log10_p`` (finite where p underflows); ``omnibus``: the test that all AUCs are
    equal. Non-finite values are ``None`` (strict JSON).
    """

    label: str
    arch: str
    seed: int
    split: str  # the split compared: "test", or "val" where there is no test set
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

    @classmethod
    def from_delong(
        cls, result, *, label: str, arch: str, seed: int, split: str, resolutions
    ) -> Comparison:
        """From a :class:`jcxr.stats.DelongResult` whose models are ``resolutions`` in order."""
        fields = dict(label=label, arch=arch, seed=seed, split=split, resolutions=resolutions)
        return cls.from_json({**result.to_dict(), **fields})  # strict JSON: inf z -> None

    @property
    def name(self) -> str:
        """File stem of this comparison: ``LABEL__ARCH__sSEED``."""
        return f"{self.label.replace(' ', '_')}__{self.arch}__s{self.seed}"

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
            seed=int(data["seed"]),
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
        )


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Every cell, and the comparisons: ``comparisons`` holds one per label (its first arch and
    seed: what the summary shows), ``all_comparisons`` every (label, arch, seed)."""

    name: str
    cells: tuple[CellResult, ...]
    comparisons: dict[str, Comparison]
    all_comparisons: tuple[Comparison, ...] = ()

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "cells": [c.to_json() for c in self.cells],
            "comparisons": {label: c.to_json() for label, c in self.comparisons.items()},
            "all_comparisons": [c.to_json() for c in self.all_comparisons],
        }

    @classmethod
    def from_json(cls, data: dict) -> SweepResult:
        return cls(
            name=data["name"],
            cells=tuple(CellResult.from_json(c) for c in data["cells"]),
            comparisons={k: Comparison.from_json(v) for k, v in data["comparisons"].items()},
            all_comparisons=tuple(Comparison.from_json(c) for c in data.get("all_comparisons", ())),
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
)


def cells_csv(cells) -> str:
    """The CSV view: one row per cell, validation metrics at the best epoch and the test AUC."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for c in cells:
        row = {**dataclasses.asdict(c.cell), "status": c.status, "best_epoch": c.best_epoch,
               **c.metrics, "test_auc": c.splits.get("test", {}).get("auc")}  # fmt: skip
        writer.writerow(row)
    return buffer.getvalue()


def console_summary(result: SweepResult) -> str:
    """The console view: per label the AUC per resolution and every pair's DeLong test."""
    lines = []
    for label, comp in result.comparisons.items():
        lines.append(
            f"\n{label} ({comp.arch}, seed {comp.seed}, {comp.split} set: "
            f"{comp.n_positive} positive / {comp.n_negative} negative)"
        )
        lines.append(f"  {'resolution':>10}  {'AUC':>6}  {'DeLong SD':>9}")
        for r, a, s in zip(comp.resolutions, comp.auc, comp.se, strict=True):
            lines.append(f"  {r:>8}px  {a:6.3f}  {s:9.3f}")
        for pair in comp.pairs():
            lines.append(
                f"  {pair.high}px vs {pair.low}px: dAUC {pair.difference:+.3f}  p = {pair.p:.2g}  "
                f"({comp.correction} {pair.p_adjusted:.2g})"
            )
        lines.append(f"  best resolution: {comp.best_resolution}px")
    return "\n".join(lines)
