"""python -m jcxr.stats PREDICTIONS.csv --label COLUMN [--scores A,B,...]: DeLong from a CSV."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from jcxr import _cli
from jcxr._io import read_csv
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
    """Read the label and score columns of ``path``: (labels (N,), {name: (N,)}).

    An empty cell is NaN (``--nan-policy`` decides); any other value that is not a number is an
    error naming its line and column. Without ``scores``, every column but the label whose
    values are numbers is a score column; a column that is numbers but for a few cells is an
    error, not silently dropped.
    """
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    header, rows = read_csv(path)
    if not rows:
        raise ValueError(f"{path}: a header and no data rows; expected one row per case")
    if label not in header:
        raise ValueError(f"{path}: no label column {label!r}; columns are {header}")
    for line, row in rows:
        if len(row) != len(header):
            raise ValueError(
                f"{path}: line {line}: {len(row)} fields, expected {len(header)} (the header's)"
            )
    if scores is None:
        scores = [c for c in header if c != label and _mostly_numeric(c, header, rows)]
        if not scores:
            raise ValueError(f"{path}: no numeric score column besides {label!r} in {header}")
    repeated = sorted({c for c in scores if scores.count(c) > 1})
    if repeated:
        raise ValueError(f"--scores lists {repeated} more than once; name each column once")
    missing = [c for c in scores if c not in header]
    if missing:
        raise ValueError(f"{path}: score column(s) {missing} not found; columns are {header}")
    columns = {}
    for name in [label, *scores]:
        k = header.index(name)
        values = np.empty(len(rows))
        for i, (line, row) in enumerate(rows):
            text = row[k].strip()
            try:
                values[i] = float(text) if text else math.nan
            except ValueError:
                raise ValueError(
                    f"{path}: line {line}, column {name!r}: expected a number, found {text!r}"
                ) from None
        columns[name] = values
    return columns.pop(label), columns


def _mostly_numeric(name: str, header: list[str], rows) -> bool:
    """True if the column's non-empty cells are numbers: a score column. A column with no
    number at all (an ID) is not one; read_columns reports the odd cell of a column with some."""
    k = header.index(name)
    return any(_is_number(row[k]) for _, row in rows if row[k].strip())


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """The command line; a user error is one line on stderr and exit 2 (``--debug``: the
    traceback)."""
    return _cli.run(_main, argv)


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    score_names = args.scores.split(",") if args.scores else None
    labels, scores = read_columns(args.predictions, args.label, score_names)
    result = delong(
        labels,
        scores,
        alpha=args.alpha,
        correction=args.correction,
        nan_policy=args.nan_policy,
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
