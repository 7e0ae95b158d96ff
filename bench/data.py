"""Input-pipeline throughput: `prepare` images/s, and shards -> host batches images/s.

    python bench/data.py [--images 1000] [--resolutions 64,320,600] [--batch 64] [--workdir DIR]
                         [--compression uncompressed] [--tfds]

Uses phantoms (512 px PNGs) written in the NIH layout. Prints a markdown table. With ``--tfds``
the shards are also exported as the tfds dataset and read back the same way (grain, same
order, batch and threads) through ``tfds.builder_from_directory(...).as_data_source()``.
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
    parser.add_argument("--tfds", action="store_true", help="also time the tfds copy")
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
    print("| resolution | batch | read threads | reader | images/s (median of epochs) | MB/s |")
    print("|---|---|---|---|---|---|")
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
        readers = {"jcxr Loader (ArrayRecord)": lambda loader=loader: loader}
        if args.tfds:
            from jcxr.data import tfds_builder

            (directory,) = tfds_builder.export(out, [r], work / "tfds")
            readers["tfds data source"] = lambda d=directory, lo=loader: tfds_batches(d, lo, args)
        for name, batches in readers.items():
            rate = median_rate(batches, args.epochs)
            megabytes = rate * r * r / 1e6
            print(
                f"| {r} | {args.batch} | {args.read_threads} | {name} | {rate:,.0f} | "
                f"{megabytes:,.0f} |"
            )


def median_rate(batches, epochs: int) -> float:
    rates = []
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for batch in batches():
            n += len(batch["pixels"])
        rates.append(n / (time.perf_counter() - start))
    return float(np.median(rates))


def tfds_batches(directory: Path, loader: Loader, args):
    """The Loader's batches (same order, batch size and threads) read from the tfds copy."""
    import grain
    import tensorflow_datasets as tfds

    source = tfds.builder_from_directory(str(directory)).as_data_source()["train"]
    order = loader.epoch_order(0).reshape(-1, args.batch)

    def load_batch(records):
        return {"pixels": np.stack([source[int(i)]["image"] for i in records])}

    options = grain.ReadOptions(num_threads=args.read_threads, prefetch_buffer_size=4)
    return grain.MapDataset.source(list(order)).map(load_batch).to_iter_dataset(options)


if __name__ == "__main__":
    main()
