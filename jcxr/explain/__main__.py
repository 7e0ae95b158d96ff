"""Where each cell's network looks, scored against boxes, at every resolution.

    python -m jcxr.explain --workdir W [--cells ID ...] [--boxes FILE] [--images N]
                           [--method grad_cam|grad_cam_plus_plus|cam]

For every finished cell of the sweep in W (or the ones named), its best checkpoint maps up to N
test images that hold the cell's finding and have boxes of it (the same images at every
resolution); each map, brought to the input resolution, is scored against the boxes rescaled to
it (:mod:`jcxr.explain.metrics`). A uniform random map's hit rate in the pointing game is the
boxes' share of the image: it is reported beside each hit rate. Writes
``W/explain/localisation.json`` and ``.csv``, ``W/explain/overlays/*.png`` (image, heat map,
boxes) and ``W/explain/localisation.png`` (hit rate against resolution, per finding).
Boxes: ``--boxes``, else the data root's ``BBox_List_2017.csv`` (NIH's, or the phantoms').
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jcxr import _cli
from jcxr.train.localise import METHODS, localise


def main(argv: list[str] | None = None) -> int:
    """The command line; a user error is one line on stderr and exit 2."""
    return _cli.run(_main, argv)


def _main(argv: list[str]) -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m jcxr.explain", description=__doc__,
                                     formatter_class=raw)  # fmt: skip
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--cells", nargs="*", help="cell ids (default: every finished cell)")
    parser.add_argument("--boxes", type=Path, help="a BBox_List_2017.csv-style file")
    parser.add_argument("--images", type=int, default=16, help="images per cell (default 16)")
    parser.add_argument("--method", choices=sorted(METHODS), default="grad_cam")
    args = parser.parse_args(argv)
    localise(args.workdir, cells=args.cells, boxes=args.boxes, images=args.images,
             method=args.method)  # fmt: skip
    print(f"localisation: {args.workdir / 'explain' / 'localisation.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
