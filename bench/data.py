"""Input-pipeline throughput: `prepare` images/s, and shards -> host batches images/s.

    python bench/data.py [--images 1000] [--resolutions 64,320,600] [--batch 64] [--workdir DIR]

Uses phantoms (512 px PNGs) written in the NIH layout. Prints a markdown table.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from jcxr.data import nih, phantom, shards
from jcxr.data.pipeline import Loader


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--resolutions", default="64,320,600")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--read-threads", type=int, default=4)
    parser.add_argument("--compression", default="uncompressed")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    resolutions = [int(r) for r in args.resolutions.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="jcxr-bench-data-"))
    root, out = work / "phantoms", work / "shards"
    phantom.generate(root, args.images, seed=0, workers=args.workers)
    table = nih.read_metadata(root)
    start = time.perf_counter()
    shards.prepare(
        table,
        root,
        out,
        resolutions,
        workers=args.workers,
        compression=args.compression,
        progress=False,
    )
    prepare_rate = len(table) / (time.perf_counter() - start)

    print(describe())
    print(
        f"prepare: {prepare_rate:.0f} images/s ({len(table)} PNGs of 512 px -> "
        f"{len(resolutions)} resolutions, {args.workers} workers, {args.compression})"
    )
    print("| resolution | batch | read threads | images/s (median of epochs) | MB/s |")
    print("|---|---|---|---|---|")
    labels = np.zeros(len(table), np.float32)
    for r in resolutions:
        loader = Loader(
            out,
            r,
            np.arange(len(table)),
            labels,
            args.batch,
            train=True,
            read_threads=args.read_threads,
        )
        rates = []
        for _ in range(args.epochs):
            start, n = time.perf_counter(), 0
            for batch in loader:
                n += len(batch["pixels"])
            rates.append(n / (time.perf_counter() - start))
        rate = float(np.median(rates))
        megabytes = rate * r * r / 1e6
        print(f"| {r} | {args.batch} | {args.read_threads} | {rate:,.0f} | {megabytes:,.0f} |")


if __name__ == "__main__":
    main()
