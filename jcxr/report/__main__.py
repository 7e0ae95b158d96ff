"""python -m jcxr.report --workdir DIR [--wandb [--entity E]]: rebuild a sweep's figures and HTML
report; with --wandb also log the summary run and publish a W&B Report (online)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jcxr import _cli
from jcxr.report import build_report


def main(argv: list[str] | None = None) -> int:
    """The command line; a user error is one line on stderr and exit 2 (``--debug``: the
    traceback)."""
    return _cli.run(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m jcxr.report", description=__doc__)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also publish the tables and figures to W&B (needs network + key)",
    )
    parser.add_argument("--entity", help="W&B entity for the report (default: the key's own)")
    args = parser.parse_args(argv)
    report, figures = build_report(args.workdir)
    print(f"report: {report} ({len(figures)} figures)")
    if args.wandb:
        import ml_collections

        from jcxr.results import SweepResult
        from jcxr.tracking import Tracker

        config = ml_collections.ConfigDict(json.loads((args.workdir / "config.json").read_text()))
        tracker = Tracker(config, args.workdir, mode="online")
        results = SweepResult.load(args.workdir)
        tracker.summary_run(results, figures, report)
        if tracker.mode != "online":
            where = (
                f"the summary run was written offline under {args.workdir / 'wandb'}; "
                "`wandb sync` it, then rerun with --wandb"
                if tracker.mode == "offline"
                else f"W&B is {tracker.mode}"
            )
            print(f"W&B: report not published (needs network and an API key); {where}",
                  file=sys.stderr)  # fmt: skip
            return 1
        from jcxr.report import wandb_report

        try:
            url = wandb_report.publish(results, figures, project=config.logging.project,
                                       entity=args.entity, config=config.to_dict())  # fmt: skip
        except Exception as error:  # network, permissions: say so, keep the local report
            print(f"W&B: report not published ({error})", file=sys.stderr)
            return 1
        print(f"W&B report: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
