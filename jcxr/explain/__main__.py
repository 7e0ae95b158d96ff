"""Where each cell's network looks, scored against boxes, at every resolution.

    python -m jcxr.explain --workdir W [--cells ID ...] [--boxes FILE] [--images N]
                           [--method grad_cam|grad_cam_plus_plus|cam] [--layer NAME]

For every finished cell of the sweep in W (or the ones named), its best checkpoint maps up to N
test images that hold the cell's finding and have boxes of it (the same images at every
resolution); each map, brought to the input resolution, is scored against the boxes rescaled to
it (:mod:`jcxr.explain.metrics`). A uniform random map's hit rate in the pointing game is the
boxes' share of the image: it is reported beside each hit rate. Writes
``W/explain/localisation.json`` and ``.csv``, ``W/explain/overlays/*.png`` (image, heat map,
boxes) and ``W/explain/localisation.png`` (hit rate against resolution, per finding).
Boxes: ``--boxes``, else the data root's ``BBox_List_2017.csv`` (NIH's, or the phantoms').
Layers (``--layer``): torchvision's module names, e.g. ``layer3`` (ResNet),
``features.denseblock3`` (DenseNet), ``features.5`` (EfficientNet); the default is each
architecture's last stage. ``--list-layers ARCH`` prints them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jcxr import _cli, explain
from jcxr.train.localise import localise


def main(argv: list[str] | None = None) -> int:
    """The command line; a user error is one line on stderr and exit 2."""
    return _cli.run(_main, argv)


def _main(argv: list[str]) -> int:
    _cli.use_compilation_cache()
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m jcxr.explain", description=__doc__,
                                     formatter_class=raw)  # fmt: skip
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--cells", nargs="*", help="cell ids (default: every finished cell)")
    parser.add_argument("--boxes", type=Path, help="a BBox_List_2017.csv-style file")
    parser.add_argument("--images", type=int, default=16, help="images per cell (default 16)")
    parser.add_argument(
        "--method",
        choices=list(explain.MAPS),
        help="the map (default: the sweep's config.eval.localise_method)",
    )
    parser.add_argument("--layer", help="the layer mapped (default: the sweep's "
                        "config.eval.localise_layer; '' = the last stage)")  # fmt: skip
    parser.add_argument("--list-layers", metavar="ARCH", help="print ARCH's layers and exit")
    args = parser.parse_args(argv)
    if args.list_layers:
        print("\n".join(explain.layer_names(args.list_layers)))
        return 0
    if args.workdir is None:
        parser.error("--workdir is required")
    localise(args.workdir, cells=args.cells, boxes=args.boxes, images=args.images,
             method=args.method, layer=args.layer)  # fmt: skip
    print(f"localisation: {args.workdir / 'explain' / 'localisation.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
