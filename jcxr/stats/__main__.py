"""python -m jcxr.stats: compare AUCs from a predictions CSV, or plan a test set's size.

python -m jcxr.stats PREDICTIONS.csv --label COLUMN [--scores A,B,...] [--clusters ID]
                                     [--method delong|bootstrap]
python -m jcxr.stats power --auc 0.8 --power 0.9 [--kappa 2]
python -m jcxr.stats power PREDICTIONS.csv --label COLUMN --scores A,B --power 0.8
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from jcxr import _cli
from jcxr._io import read_csv
from jcxr.stats.bootstrap import bootstrap
from jcxr.stats.delong import NAN_POLICIES, delong
from jcxr.stats.multitest import CORRECTIONS
from jcxr.stats.noninferiority import PROCEDURES, noninferiority
from jcxr.stats.power import ALTERNATIVES, Binormal, power


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jcxr.stats",
        description=(
            "Compare the ROC AUCs of several models scored on the same cases with DeLong's test: "
            "per-model AUC, SE and CI, every pair's difference, z, p and adjusted p, and the "
            "omnibus test that all AUCs are equal. Higher score = positive class. "
            "'python -m jcxr.stats power --help': power and sample size."
        ),
    )
    parser.add_argument("predictions", type=Path, help="CSV with one row per case")
    parser.add_argument("--label", required=True, help="column holding the 0/1 ground truth")
    parser.add_argument(
        "--scores",
        help="comma-separated score columns (default: every other column that is all numeric)",
    )
    parser.add_argument(
        "--clusters",
        metavar="COLUMN",
        help="column of cluster IDs (patient or study): clustered DeLong (Obuchowski 1997), or "
        "cluster resampling with --method bootstrap",
    )
    parser.add_argument("--method", choices=("delong", "bootstrap"), default="delong")
    parser.add_argument("--n-resamples", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--noninferiority",
        type=float,
        metavar="DELTA",
        help="also test every other column for non-inferiority to --reference within DELTA AUC "
        "(one-sided, at --alpha); columns are tested from the last listed to the first, so list "
        "them from lowest to highest resolution",
    )
    parser.add_argument("--reference", help="non-inferiority reference column (default: best)")
    parser.add_argument(
        "--procedure", choices=PROCEDURES, default="fixed_sequence", help="non-inferiority family"
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


def build_power_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jcxr.stats power",
        description=(
            "Power, sample size or significance level for an AUC comparison (Obuchowski & "
            "McClish 1997, as pROC's power.roc.test). Give --power to get the number of "
            "positives, --n-positive to get the power, both to get the significance level. "
            "The variance comes from a predictions CSV (two score columns), binormal "
            "parameters, or one AUC tested against 0.5."
        ),
    )
    parser.add_argument("predictions", type=Path, nargs="?", help="CSV, one row per case")
    parser.add_argument("--label", help="with a CSV: the 0/1 ground-truth column")
    parser.add_argument("--scores", help="with a CSV: the two score columns, A,B (A = null)")
    parser.add_argument("--clusters", metavar="COLUMN", help="with a CSV: cluster ID column")
    parser.add_argument("--auc", type=float, help="one AUC, tested against 0.5")
    parser.add_argument("--binormal", help="a1,b1,a2,b2: two binormal curves")
    parser.add_argument("--r-positive", type=float, help="binormal: correlation in positives")
    parser.add_argument("--r-negative", type=float, help="binormal: correlation in negatives")
    parser.add_argument("--fpr", help="binormal: partial-AUC range low,high")
    parser.add_argument("--delta", type=float, help="AUC difference to detect")
    parser.add_argument("--n-positive", type=float, help="number of positive cases")
    parser.add_argument("--power", type=float, help="1 - beta")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level")
    parser.add_argument("--kappa", type=float, help="negatives per positive")
    parser.add_argument("--alternative", choices=ALTERNATIVES, default="two-sided")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def read_columns(path: Path, label: str, scores: list[str] | None, clusters: str | None = None):
    """Read the label and score columns of ``path``: (labels (N,), {name: (N,)}), and the
    cluster IDs (N,) of column ``clusters`` (text, none empty) or None.

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
    if clusters is not None and clusters not in header:
        raise ValueError(f"{path}: no cluster column {clusters!r}; columns are {header}")
    if scores is None:
        scores = [
            c for c in header if c not in (label, clusters) and _mostly_numeric(c, header, rows)
        ]
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
    ids = None
    if clusters is not None:
        k = header.index(clusters)
        ids = np.array([row[k].strip() for _, row in rows], dtype=object)
        for line, row in rows:
            if not row[k].strip():
                raise ValueError(f"{path}: line {line}, column {clusters!r}: empty cluster ID")
    return columns.pop(label), columns, ids


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
    if argv[:1] == ["power"]:
        return _power(build_power_parser().parse_args(argv[1:]))
    args = build_parser().parse_args(argv)
    score_names = args.scores.split(",") if args.scores else None
    labels, scores, ids = read_columns(args.predictions, args.label, score_names, args.clusters)
    if args.method == "bootstrap":
        result = bootstrap(labels, scores, clusters=ids, n_resamples=args.n_resamples,
                           seed=args.seed, correction=args.correction,
                           nan_policy=args.nan_policy)  # fmt: skip
    else:
        result = delong(labels, scores, clusters=ids, alpha=args.alpha,
                        correction=args.correction, nan_policy=args.nan_policy)  # fmt: skip
    if args.noninferiority is None:
        print(json.dumps(result.to_dict(), indent=2) if args.json else result)
        return 0
    if args.method != "delong":
        raise ValueError("--noninferiority works with --method delong")
    reference = args.reference or result.names[int(np.argmax(result.auc))]
    others = [n for n in reversed(result.names) if n != reference]
    found = noninferiority(result, reference=reference, candidates=others,
                           margin=args.noninferiority, alpha=args.alpha,
                           procedure=args.procedure)  # fmt: skip
    if args.json:
        print(json.dumps({"delong": result.to_dict(), "noninferiority": found.to_dict()}, indent=2))
    else:
        print(f"{result}\n\n{found}")
    return 0


def _power(args) -> int:
    source = {}
    if args.predictions is not None:
        if not (args.label and args.scores and len(args.scores.split(",")) == 2):
            raise ValueError("power from a CSV needs --label and --scores A,B (two columns)")
        labels, scores, ids = read_columns(
            args.predictions, args.label, args.scores.split(","), args.clusters
        )
        source["result"] = delong(labels, scores, clusters=ids)
    if args.binormal is not None:
        values = _numbers(args.binormal, "--binormal", 4)
        if args.r_positive is None or args.r_negative is None:
            raise ValueError("--binormal needs --r-positive and --r-negative")
        fpr = tuple(_numbers(args.fpr, "--fpr", 2)) if args.fpr else None
        source["binormal"] = Binormal(*values, args.r_positive, args.r_negative, fpr)
    if args.auc is not None:
        source["auc"] = args.auc
    both = args.n_positive is not None and args.power is not None
    result = power(
        **source,
        delta=args.delta,
        n_positive=args.n_positive,
        power=args.power,
        alpha=None if both else args.alpha,
        kappa=args.kappa,
        alternative=args.alternative,
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0


def _numbers(text: str, flag: str, count: int) -> list[float]:
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count:
        raise ValueError(f"{flag} takes {count} comma-separated numbers; got {text!r}")
    return values


if __name__ == "__main__":
    sys.exit(main())
