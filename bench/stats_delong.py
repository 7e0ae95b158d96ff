"""Time jcxr.stats.delong (all pairs, K models) against a plain O(m n) DeLong, unclustered
and clustered by patient (Obuchowski 1997).

    python bench/stats_delong.py [--k 9] [--sizes 4000,100000,1000000] [--repeats 7]

Prints a markdown table for docs/benchmarks.md. The O(m n) reference runs only where its m x n
kernel matrix fits in --reference-memory-gb. Clustered rows put the cases in patients of 1-6
images (NIH ChestX-ray14's mix: most patients have several); no plain reference exists for
them, so they are timed beside the unclustered call on the same data.
"""

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from jcxr.stats import delong


def plain_delong(y, scores):
    """DeLong (1988) by definition, one m x n kernel per model: the textbook implementation."""
    v10, v01 = [], []
    for row in scores:
        pos, neg = row[y == 1], row[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    return np.cov(np.array(v10)) / len(v10[0]) + np.cov(np.array(v01)) / len(v01[0])


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--sizes", default="4000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--reference-memory-gb", type=float, default=2.0)
    args = parser.parse_args()

    print(describe())
    print("| K | N | clusters | jcxr min | jcxr median | O(mn) reference | speed-up |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for n_cases in map(int, args.sizes.split(",")):
        y = rng.integers(0, 2, n_cases)
        scores = y + rng.normal(size=(args.k, n_cases))
        delong(y, scores)  # warm-up
        fast_min, fast_median = best_of(partial(delong, y, scores), args.repeats)
        m = int(y.sum())
        if m * (n_cases - m) * 8 * 3 <= args.reference_memory_gb * 2**30:
            ref, _ = best_of(partial(plain_delong, y, scores), max(1, args.repeats // 3))
            reference, speedup = f"{ref * 1e3:.1f} ms", f"{ref / fast_median:.0f}x"
        else:
            reference, speedup = "does not fit", "-"
        print(
            f"| {args.k} | {n_cases:,} | none | {fast_min * 1e3:.2f} ms | "
            f"{fast_median * 1e3:.2f} ms | {reference} | {speedup} |"
        )
        patients = np.repeat(np.arange(n_cases), rng.integers(1, 7, n_cases))[:n_cases]
        clustered = partial(delong, y, scores, clusters=patients)
        clustered()
        c_min, c_median = best_of(clustered, args.repeats)
        print(
            f"| {args.k} | {n_cases:,} | {np.unique(patients).size:,} patients | "
            f"{c_min * 1e3:.2f} ms | {c_median * 1e3:.2f} ms | - | "
            f"{c_median / fast_median:.2f}x the unclustered time |"
        )


if __name__ == "__main__":
    main()
