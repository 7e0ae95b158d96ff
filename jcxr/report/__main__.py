"""python -m jcxr.report --workdir DIR [--wandb]: rebuild a sweep's figures and HTML report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jcxr.report import build_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jcxr.report", description=__doc__)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also publish the tables and figures to W&B (needs network + key)",
    )
    args = parser.parse_args(argv)
    try:
        report, figures = build_report(args.workdir)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report: {report} ({len(figures)} figures)")
    if args.wandb:
        import ml_collections

        from jcxr.train.tracking import Tracker

        config = ml_collections.ConfigDict(json.loads((args.workdir / "config.json").read_text()))
        tracker = Tracker(config, args.workdir, mode="online")
        if tracker.mode != "online":
            print(
                "W&B: not published (no API key); the summary run was written offline under "
                f"{args.workdir / 'wandb'} for `wandb sync`",
                file=sys.stderr,
            )
        results = json.loads((args.workdir / "results.json").read_text())
        tracker.summary_run(results, figures, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
