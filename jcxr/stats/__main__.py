"""python -m jcxr.stats PREDICTIONS.csv --label COLUMN [--scores A,B,...]: DeLong from a CSV."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

from jcxr.stats.delong import NAN_POLICIES, delong
from jcxr.stats.multitest import CORRECTIONS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jcxr.stats",
        description=(
            "Compare the ROC AUCs of several models scored on the same cases with DeLong's test: "
            "per-model AUC, SE and CI, every pair's difference, z, p and adjusted p, and the "
            "omnibus test that all AUCs are equal. Higher score = positive class."
        ),
    )
    parser.add_argument("predictions", type=Path, help="CSV with one row per case")
    parser.add_argument("--label", required=True, help="column holding the 0/1 ground truth")
    parser.add_argument(
        "--scores",
        help="comma-separated score columns (default: every other column that is all numeric)",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="CI level is 1 - alpha")
    parser.add_argument("--correction", choices=CORRECTIONS, default="holm")
    parser.add_argument(
        "--nan-policy",
        choices=NAN_POLICIES,
        default="raise",
        help="'omit' drops cases with an empty or non-finite value in any used column",
    )
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    return parser


def read_columns(path: Path, label: str, scores: list[str] | None):
    """Read the label and score columns of ``path``: (labels (N,), {name: (N,)})."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        rows = list(reader)
    if not header:
        raise ValueError(f"{path}: empty file, expected a header row")
    if label not in header:
        raise ValueError(f"{path}: no label column {label!r}; columns are {header}")
    if scores is None:
        scores = [c for c in header if c != label and _all_numeric(r[c] for r in rows)]
        if not scores:
            raise ValueError(f"{path}: no numeric score column besides {label!r} in {header}")
    missing = [c for c in scores if c not in header]
    if missing:
        raise ValueError(f"{path}: score column(s) {missing} not found; columns are {header}")
    columns = {}
    for name in [label, *scores]:
        values = np.empty(len(rows))
        for i, row in enumerate(rows):
            text = (row[name] or "").strip()
            try:
                values[i] = float(text) if text else math.nan
            except ValueError:
                # Row numbers count the header as line 1, as a spreadsheet shows them.
                raise ValueError(
                    f"{path}: line {i + 2}, column {name!r}: expected a number, found {text!r}"
                ) from None
        columns[name] = values
    return columns.pop(label), columns


def _all_numeric(values) -> bool:
    for text in values:
        try:
            float(text)
        except (TypeError, ValueError):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        score_names = args.scores.split(",") if args.scores else None
        labels, scores = read_columns(args.predictions, args.label, score_names)
        result = delong(
            labels,
            scores,
            alpha=args.alpha,
            correction=args.correction,
            nan_policy=args.nan_policy,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
