"""python -m jcxr.data {describe,prepare,verify,tfds,phantoms}: datasets from metadata to shards."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from jcxr import _cli
from jcxr.data import SOURCES, chexpert, load_table, phantom, shards, splits
from jcxr.data.table import DataError, Table


def describe(table: Table, label: str | None, subsample_size: int | None, seed: int = 0) -> dict:
    out = {
        "images": len(table),
        "patients": table.num_patients,
        "labels": table.counts(),
    }
    if label is not None:
        sub = splits.positive_enriched_subsample(table, label, size=subsample_size, seed=seed)
        out["subsample"] = {
            "label": label,
            "size": sub.size,
            "positives": sub.positives,
            "negatives": sub.negatives,
            "positive_weight": sub.positive_weight,
        }
    if table.source == "chexpert":
        _, labels = chexpert.study_labels(table)
        out["studies"] = {
            name: {
                "studies": int((~np.isnan(labels[:, j])).sum()),
                "positives": int((labels[:, j] == 1).sum()),
            }
            for j, name in enumerate(table.label_names)
        }
    return out


def _print_description(info: dict) -> None:
    print(f"images    {info['images']:,}")
    print(f"patients  {info['patients']:,}")
    print(f"\n{'label':<28}{'positives':>10}{'single':>10}")
    for name, c in info["labels"].items():
        print(f"{name:<28}{c['positives']:>10,}{c['single_finding']:>10,}")
    if "studies" in info:
        print(f"\n{'label (studies)':<28}{'studies':>10}{'positive':>10}")
        for name, c in info["studies"].items():
            print(f"{name:<28}{c['studies']:>10,}{c['positives']:>10,}")
    if "subsample" in info:
        s = info["subsample"]
        print(
            f"\nsubsample for {s['label']}: {s['size']:,} images = {s['positives']:,} "
            f"positives + {s['negatives']:,} negatives; positive weight "
            f"{s['positive_weight']:.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    """The command line; a user error is one line on stderr and exit 2 (``--debug``: the
    traceback)."""
    return _cli.run(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m jcxr.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("describe", help="counts from the metadata alone (no images needed)")
    d.add_argument("source", choices=SOURCES)
    d.add_argument("--root", required=True, type=Path)
    d.add_argument(
        "--label", help="also describe Sabottke & Spieler 2020's subsample for this label"
    )
    d.add_argument("--subsample-size", type=int, default=20_000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--json", action="store_true")
    d.add_argument("--preset", help="a study's cohort, e.g. cardenas2020 (PadChest, OpenI)")

    p = sub.add_parser("prepare", help="decode once, write pre-resized ArrayRecord shards")
    p.add_argument("--source", required=True, choices=SOURCES)
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--resolutions", required=True, help="comma-separated sizes, e.g. 32,64,128")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--preset", help="a study's cohort, e.g. cardenas2020 (PadChest, OpenI)")
    p.add_argument("--resize", default="bilinear", choices=sorted(shards.RESIZE))
    p.add_argument("--square", default="crop", choices=shards.SQUARE)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--compression",
        default="uncompressed",
        choices=shards.COMPRESSION,
        help="ArrayRecord compression (default uncompressed: fastest to read)",
    )
    p.add_argument("--crop-to-lungs", metavar="MASKS", type=Path,
                   help="cut each image to its lung mask's box first (a folder of masks named "
                   "like the images, PNG or JPEG)")  # fmt: skip
    p.add_argument("--crop-margin", type=float, default=0.05,
                   help="widen the lung box by this fraction of it on every side")  # fmt: skip
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images, listing them")
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="remove shards in --out that were made from other inputs, then prepare",
    )

    v = sub.add_parser("verify", help="re-read shards: checksums, counts, order")
    v.add_argument("shards", type=Path)

    t = sub.add_parser("tfds", help="also expose the shards as a TF-free tfds dataset")
    t.add_argument("shards", type=Path)
    t.add_argument("--out", type=Path, help="tfds data_dir (default SHARDS/tfds)")
    t.add_argument("--resolutions", help="comma-separated sizes (default: all prepared)")

    g = sub.add_parser("phantoms", help="write synthetic phantoms in the NIH layout")
    g.add_argument("--out", required=True, type=Path)
    g.add_argument("--images", type=int, default=2000)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--workers", type=int, default=2)

    args = parser.parse_args(argv)
    if args.command == "describe":
        table = load_table(args.source, args.root, args.preset)
        info = describe(table, args.label, args.subsample_size, args.seed)
        print(json.dumps(info, indent=2)) if args.json else _print_description(info)
    elif args.command == "prepare":
        resolutions = _resolutions(args.resolutions)
        table = load_table(args.source, args.root, args.preset)
        manifest = shards.prepare(
            table,
            args.root,
            args.out,
            resolutions,
            method=args.resize,
            square=args.square,
            workers=args.workers,
            skip_bad=args.skip_bad,
            compression=args.compression,
            crop_to_lungs=args.crop_to_lungs,
            crop_margin=args.crop_margin,
            rebuild=args.rebuild,
        )
        print(
            f"wrote {manifest['images']:,} images at {manifest['resolutions']} px to "
            f"{args.out} ({len(manifest['skipped'])} skipped)"
        )
    elif args.command == "tfds":
        from jcxr.data import tfds_builder

        resolutions = _resolutions(args.resolutions) if args.resolutions else None
        for directory in tfds_builder.export(args.shards, resolutions, args.out):
            print(f"tfds: {directory}")
    elif args.command == "verify":
        problems = shards.verify(args.shards)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        print(f"{args.shards}: every shard checks out")
    else:
        csv_path = phantom.generate(args.out, args.images, seed=args.seed, workers=args.workers)
        print(f"phantoms: {csv_path}")
    return 0


def _resolutions(text: str) -> list[int]:
    try:
        return [int(r) for r in text.split(",")]
    except ValueError:
        raise DataError(f"--resolutions must be comma-separated integers; got {text!r}") from None


if __name__ == "__main__":
    sys.exit(main())
