"""python -m jcxr.train --config configs/NAME.py [--config.FIELD=VALUE ...] [--workdir DIR]

Trains one network per (label, resolution, arch, seed) cell of the config's sweep, compares
every resolution pair per label with DeLong's test and writes results.json, results.csv,
figures and report.html to the workdir (default: workdirs/CONFIG_NAME). Rerunning the same
command resumes interrupted cells and skips finished ones; rerunning it with a config or shards
that change a cell's result stops, naming what changed (``--fresh`` trains those cells again).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "config file (get_config())", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "output directory (default workdirs/NAME)")
_FRESH = flags.DEFINE_bool(
    "fresh",
    False,
    "train again the cells of the workdir that another config or other shards made (their "
    "checkpoints and results are removed)",
)


def _valid_fields(config, prefix=""):
    out = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        out += _valid_fields(value, name + ".") if hasattr(value, "items") else [name]
    return out


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.set_verbosity(logging.WARNING)  # orbax narrates every save at INFO
    from jcxr.data.table import DataError
    from jcxr.results import console_summary
    from jcxr.train.config import validate
    from jcxr.train.sweep import run_sweep

    config = _CONFIG.value
    try:
        validate(config)
    except ValueError as error:
        sys.exit(f"error: {error}")
    workdir = Path(_WORKDIR.value or Path("workdirs") / config.name)
    try:
        results = run_sweep(config, workdir, fresh=_FRESH.value)
    except DataError as error:
        sys.exit(f"error: {error}")
    print(console_summary(results))
    failed = [c for c in results.cells if not c.done]
    print(f"\nresults: {workdir / 'results.json'}  {workdir / 'results.csv'}")
    print(f"report:  {workdir / 'report.html'}")
    if failed:
        print(f"{len(failed)} cell(s) failed: see {workdir / 'cells'}/*/failure.json")


def last_override_wins(argv: list[str]) -> list[str]:
    """``argv`` with each ``--config.FIELD=VALUE`` given once, its last value: ml_collections
    appends a repeated tuple override to the first (``(32, 32, 48)``) instead of replacing it."""

    def field(arg: str) -> str | None:
        return arg.split("=", 1)[0] if arg.startswith("--config.") and "=" in arg else None

    last = {field(a): i for i, a in enumerate(argv) if field(a)}
    return [a for i, a in enumerate(argv) if not field(a) or last[field(a)] == i]


def run():
    # Parse once, up front: a mistyped --config.FIELD fails inside absl's parser with a
    # traceback, so it is caught here and reported with the valid fields.
    app.define_help_flags()
    try:
        argv = flags.FLAGS(last_override_wins(sys.argv))
        _ = _CONFIG.value
    except (AttributeError, KeyError, flags.Error) as error:
        from jcxr.train.config import defaults

        valid = ", ".join(_valid_fields(defaults()))
        sys.exit(f"error: bad --config override ({error}); valid fields: {valid}")
    app.run(main, argv=argv, flags_parser=lambda args: args)


if __name__ == "__main__":
    run()
