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

from jcxr import _cli

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
    from jcxr.train.config import validate
    from jcxr.train.sweep import run_sweep

    config = _CONFIG.value
    workdir = Path(_WORKDIR.value or Path("workdirs") / config.name)
    _cli.call(validate, config)
    _cli.use_compilation_cache()
    if not config.sweep.arms:
        _print_sweep(_cli.call(run_sweep, config, workdir, fresh=_FRESH.value), workdir)
        return
    from jcxr.train.arms import run_arms

    for name, results in _cli.call(run_arms, config, workdir, fresh=_FRESH.value).items():
        print(f"\n=== arm {name}")
        _print_sweep(results, workdir / name)
    print(f"\n{(workdir / 'arms.txt').read_text()}")
    print(f"arms compared: {workdir / 'arms.json'}  {workdir / 'arms.html'}")


def _print_sweep(results, workdir: Path) -> None:
    from jcxr.summary import console_summary

    print(console_summary(results))
    failed = [c for c in results.cells if not c.done]
    print(f"\nresults: {workdir / 'results.json'}  {workdir / 'results.csv'}")
    print(f"report:  {workdir / 'report.html'}")
    if failed:
        print(f"{len(failed)} cell(s) failed: see {workdir / 'cells'}/*/failure.json")


def run():
    # Parse once, up front: a mistyped --config.FIELD fails inside absl's parser with a
    # traceback, so it is caught here and reported with the valid fields.
    app.define_help_flags()
    arguments = [a for a in _cli.last_override_wins(sys.argv) if a != "--debug"]
    path = _cli.config_path(arguments)
    if path and not Path(path).is_file():
        sys.exit(f"error: --config {path}: no such file")
    try:
        argv = flags.FLAGS(arguments)
        config = _CONFIG.value
    except (AttributeError, KeyError, flags.Error) as error:
        if _cli.debugging(sys.argv):
            raise
        if "parsing config file" in str(error) or "Failed loading config" in str(error):
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            sys.exit(f"error: --config {path}: the config file does not load ({lines[-1]})")
        from jcxr.train.config import defaults

        valid = ", ".join(_valid_fields(defaults()))
        sys.exit(f"error: bad --config override ({error}); valid fields: {valid}")
    if config is None:
        sys.exit(
            "error: --config is required, e.g. python -m jcxr.train --config configs/demo.py "
            "(--help lists the flags)"
        )
    app.run(main, argv=argv, flags_parser=lambda args: args)


if __name__ == "__main__":
    run()
