"""What every jcxr command line does with a user error: one line naming it, exit status 2.

A user error is bad input (a file, a config value, a CSV row), an OS refusal (a missing file, a
folder where a file should be) or a model that does not fit in memory: ``ValueError`` (jcxr's
``DataError`` among them), ``OSError`` and ``MemoryError``. ``--debug`` on the command line, or
``JCXR_DEBUG=1`` in the environment, shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

USER_ERRORS = (ValueError, OSError, MemoryError)
CACHE_ENV = "JCXR_COMPILATION_CACHE"  # a folder, or "off"


def use_compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache for a command-line run; returns its folder.

    Every (model, resolution, microbatch) program a sweep, ``explain`` or ``lr_find`` compiles
    is kept, so a rerun, a resume or the next cell of the same shape loads it instead of
    compiling again (cold compiles take 5-85 s per model on CPU, docs/benchmarks.md). A folder
    set through JAX (``JAX_COMPILATION_CACHE_DIR``) is kept; otherwise ``$JCXR_COMPILATION_CACHE``
    or ``~/.cache/jcxr/jax`` (``$XDG_CACHE_HOME`` honoured); ``JCXR_COMPILATION_CACHE=off``
    leaves it off.
    """
    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    choice = os.environ.get(CACHE_ENV, "")
    if choice.lower() in ("off", "0", "none"):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = str(Path(choice) if choice else base / "jcxr" / "jax")
    jax.config.update("jax_compilation_cache_dir", folder)
    return folder


def debugging(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("JCXR_DEBUG", "") not in ("", "0")


def run(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """``main(argv)`` (``--debug`` removed) with user errors as one line on stderr and exit 2,
    and Ctrl-C as "interrupted" and exit 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debugging(argv)
    try:
        return main([a for a in argv if a != "--debug"]) or 0
    except USER_ERRORS as error:
        if debug:
            raise
        report(error)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def call(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``; a user error exits as :func:`run` does (for absl mains, which
    parse ``sys.argv`` themselves)."""
    try:
        return fn(*args, **kwargs)
    except USER_ERRORS as error:
        if debugging(sys.argv):
            raise
        report(error)
        sys.exit(2)


def report(error: BaseException) -> None:
    message = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in message:
        message = f"{error.filename}: {message}"
    print(f"error: {message} (--debug shows the traceback)", file=sys.stderr)


def last_override_wins(argv: list[str]) -> list[str]:
    """``argv`` with each ``--config.FIELD=VALUE`` given once, its last value: ml_collections
    appends a repeated tuple override to the first (``(32, 32, 48)``) instead of replacing it."""

    def field(arg: str) -> str | None:
        return arg.split("=", 1)[0] if arg.startswith("--config.") and "=" in arg else None

    last = {field(a): i for i, a in enumerate(argv) if field(a)}
    return [a for i, a in enumerate(argv) if not field(a) or last[field(a)] == i]


def config_path(arguments: list[str]) -> str | None:
    """The file of ``--config FILE[:ARG]`` / ``--config=FILE[:ARG]``, if given."""
    for i, a in enumerate(arguments):
        if a.startswith("--config="):
            return a.split("=", 1)[1].split(":")[0]
        if a == "--config" and i + 1 < len(arguments):
            return arguments[i + 1].split(":")[0]
    return None
