"""Arms: the whole sweep again under named config changes, then compared model by model.

Cardona Cardenas et al. 2020 trained every architecture twice, with class weights 75/25 and
50/50. ``config.sweep.arms`` lists such variants as ``"NAME: FIELD=VALUE; FIELD=VALUE"``
(values are Python literals: ``"w50: train.class_weights=(0.5, 0.5)"``). Each arm is a complete
sweep in ``WORKDIR/NAME`` (its own results, report and W&B runs, named ``CONFIG-NAME``); after
the last, every (label, arch, resolution, seed) that finished in all arms is compared across
them on the same images by paired DeLong (Holm-adjusted over the pairs), on the compared split
and, with ``eval.external``, on the external set. The table goes to ``WORKDIR/arms.json``,
``arms.txt`` and ``arms.html`` (linking each arm's report).
"""

from __future__ import annotations

import ast
import html
import itertools
import json
from pathlib import Path

import numpy as np

from jcxr._io import atomic_write_text
from jcxr.data.table import DataError
from jcxr.predictions import scores_of
from jcxr.results import Cell, SweepResult
from jcxr.stats import delong


def parse_arms(entries) -> list[tuple[str, dict]]:
    """``[(name, {field: value})]`` from ``config.sweep.arms``; a malformed entry, a repeated
    name or an unreadable value raises ValueError naming the entry."""
    arms = []
    for entry in entries:
        name, colon, rest = str(entry).partition(":")
        name = name.strip()
        if not colon or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(
                f"config.sweep.arms has {entry!r}; expected 'NAME: FIELD=VALUE; ...' with NAME "
                "letters, digits, '_' or '-'"
            )
        overrides = {}
        for assignment in filter(None, (a.strip() for a in rest.split(";"))):
            field, equals, text = assignment.partition("=")
            try:
                if not equals:
                    raise ValueError("no '='")
                overrides[field.strip()] = ast.literal_eval(text.strip())
            except (ValueError, SyntaxError) as error:
                raise ValueError(
                    f"config.sweep.arms entry {name!r}: {assignment!r} is not FIELD=VALUE with a "
                    f"Python literal VALUE ({error})"
                ) from None
        if not overrides:
            raise ValueError(f"config.sweep.arms entry {name!r} changes nothing")
        arms.append((name, overrides))
    names = [n for n, _ in arms]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"config.sweep.arms names {', '.join(repeated)} more than once")
    return arms


def arm_configs(config) -> list[tuple[str, object]]:
    """Each arm's complete config (validated), in the order listed."""
    from jcxr.train.config import validate

    out = []
    for name, overrides in parse_arms(config.sweep.arms):
        arm = config.copy_and_resolve_references()
        for field, value in overrides.items():
            *path, leaf = field.split(".")
            section = arm
            try:
                for part in path:
                    section = section[part]
                old = section[leaf]
            except (KeyError, TypeError):
                raise ValueError(
                    f"config.sweep.arms entry {name!r}: no config field {field!r}"
                ) from None
            if field.startswith("sweep."):
                raise ValueError(f"config.sweep.arms entry {name!r}: an arm cannot change "
                                 f"{field} (arms are compared over the same sweep)")  # fmt: skip
            value = tuple(value) if isinstance(old, tuple) and isinstance(value, list) else value
            try:
                section[leaf] = value
            except TypeError as error:
                raise ValueError(f"config.sweep.arms entry {name!r}: {field}: {error}") from None
        arm.sweep.arms = ()
        arm.name = f"{config.name}-{name}"
        try:
            validate(arm)
        except ValueError as error:
            raise ValueError(f"config.sweep.arms entry {name!r}: {error}") from None
        out.append((name, arm))
    return out


def run_arms(config, workdir: Path, *, fresh: bool = False) -> dict[str, SweepResult]:
    """Every arm's sweep (each checked before the first trains), then the comparison across
    arms; returns ``{arm: SweepResult}``."""
    from jcxr.train.sweep import run_sweep

    arms = arm_configs(config)
    workdir.mkdir(parents=True, exist_ok=True)
    results = {name: run_sweep(arm, workdir / name, fresh=fresh) for name, arm in arms}
    rows = compare_arms(config, workdir, results)
    write_arms(workdir, rows, list(results))
    return results


def compare_arms(config, workdir: Path, results: dict[str, SweepResult]) -> list[dict]:
    """Paired DeLong across the arms for every cell finished in all of them, per split."""
    names = list(results)
    done = [{c.cell for c in r.cells if c.done and c.cell.fold is None} for r in results.values()]
    shared = [c for c in (c.cell for c in results[names[0]].cells) if all(c in d for d in done)]
    splits = [config.eval.compare_on] + (["external"] if config.eval.external else [])
    rows = []
    for cell in dict.fromkeys(shared):
        for split in splits:
            paths = [workdir / n / "cells" / cell.id / f"predictions_{split}.npz" for n in names]
            if split == config.eval.compare_on and not paths[0].is_file():
                split = "val"
                paths = [workdir / n / "cells" / cell.id / "predictions_val.npz" for n in names]
            if not all(p.is_file() for p in paths):
                continue
            rows.append(_compare(cell, split, names, paths))
    return rows


def _compare(cell: Cell, split: str, names: list[str], paths: list[Path]) -> dict:
    preds = [np.load(p) for p in paths]
    order = np.argsort(preds[0]["record"])
    records, labels = preds[0]["record"][order], preds[0]["label"][order]
    scores = []
    for name, p in zip(names, preds, strict=True):
        o = np.argsort(p["record"])
        if not np.array_equal(p["record"][o], records):
            raise DataError(f"arm {name}: {cell.id} predicted on other {split} images than arm "
                            f"{names[0]}; arms must share the data and its split")  # fmt: skip
        scores.append(scores_of(p)[o])
    result = delong(labels, np.stack(scores), names=names)
    pairs = list(itertools.combinations(range(len(names)), 2))
    return {"label": cell.label, "arch": cell.arch, "resolution": cell.resolution,
            "seed": cell.seed, "split": split, "arms": names, "auc": result.auc.tolist(),
            "auc_low": result.ci[:, 0].tolist(), "auc_high": result.ci[:, 1].tolist(),
            "pairs": [list(pair) for pair in pairs], "p": [float(result.p[a, b]) for a, b in pairs],
            "p_adjusted": [float(result.p_adjusted[a, b]) for a, b in pairs],
            "n_positive": int(labels.sum()),
            "n_negative": int(len(labels) - labels.sum())}  # fmt: skip


def arms_text(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        lines.append(f"{row['label']} {row['arch']} {row['resolution']} px seed {row['seed']}, "
                     f"{row['split']} ({row['n_positive']} positive / {row['n_negative']} "
                     "negative)")  # fmt: skip
        for arm, auc, lo, hi in zip(row["arms"], row["auc"], row["auc_low"], row["auc_high"],
                                    strict=True):  # fmt: skip
            lines.append(f"  {arm:<16} AUC {auc:.3f} ({lo:.3f}-{hi:.3f})")
        for (a, b), p, q in zip(row["pairs"], row["p"], row["p_adjusted"], strict=True):
            lines.append(f"  {row['arms'][a]} vs {row['arms'][b]}: p = {p:.3g} (Holm {q:.3g})")
    return "\n".join(lines)


def write_arms(workdir: Path, rows: list[dict], names: list[str]) -> None:
    """``arms.json``, ``arms.txt`` and ``arms.html`` (the table, each arm's report linked)."""
    atomic_write_text(workdir / "arms.json", json.dumps({"arms": names, "rows": rows}, indent=2))
    atomic_write_text(workdir / "arms.txt", arms_text(rows) + "\n")
    links = " · ".join(f'<a href="{html.escape(n)}/report.html">{html.escape(n)}</a>'
                       for n in names)  # fmt: skip
    head = "".join(f"<th>AUC {html.escape(n)} (95% CI)</th>" for n in names)
    body = []
    for row in rows:
        aucs = "".join(f"<td>{a:.3f} ({lo:.3f}-{hi:.3f})</td>" for a, lo, hi in
                       zip(row["auc"], row["auc_low"], row["auc_high"], strict=True))  # fmt: skip
        tests = "<br>".join(f"{html.escape(row['arms'][a])} vs {html.escape(row['arms'][b])}: "
                            f"p = {p:.3g} (Holm {q:.3g})" for (a, b), p, q in
                            zip(row["pairs"], row["p"], row["p_adjusted"],
                                strict=True))  # fmt: skip
        body.append(f"<tr><td>{html.escape(row['label'])}</td><td>{html.escape(row['arch'])}"
                    f"</td><td>{row['resolution']}</td><td>{row['seed']}</td><td>"
                    f"{html.escape(row['split'])}</td>{aucs}<td>{tests}</td></tr>")  # fmt: skip
    page = (
        "<!doctype html><meta charset='utf-8'><title>jcxr arms</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;"
        "border-bottom:1px solid #ddd;text-align:left}</style>"
        f"<h1>Arms compared</h1><p>Each arm's report: {links}</p>"
        "<p>Paired DeLong on the same images, Holm-adjusted over the arm pairs.</p>"
        f"<table><tr><th>label</th><th>arch</th><th>px</th><th>seed</th><th>split</th>{head}"
        f"<th>tests</th></tr>{''.join(body)}</table>"
    )
    atomic_write_text(workdir / "arms.html", page + "\n")
