"""Shared by the test modules and by the scripts they run in fresh interpreters."""

import importlib.util
from pathlib import Path

from jcxr.train.config import defaults


def load_module(path: Path):
    """The Python file at ``path`` (a config, a bench script) imported as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(shard_dir, **changes):
    """A one-cell sweep (Mass, 32 px, resnet_tiny, 2 epochs) small enough for CPU tests.

    ``changes``: ``section__field=value``, e.g. ``train__epochs=1``.
    """
    c = defaults()
    c.name = "tiny"
    c.data.shards = str(shard_dir)
    c.sweep.labels = ("Mass",)
    c.sweep.resolutions = (32,)
    c.sweep.archs = ("resnet_tiny",)
    c.train.epochs = 2
    c.train.effective_batch_size = 16
    c.train.microbatch_size = 8
    c.train.log_every = 2
    c.train.checkpoint_every = 3
    c.eval.batch_size = 64
    c.logging.wandb = "disabled"
    c.logging.progress = False
    for key, value in changes.items():
        section, field = key.split("__")
        c[section][field] = value
    return c


def sleep_in_worker(pid_file: str) -> None:
    """For the worker-lifetime test: record this worker's pid, then outlive any test."""
    import os
    import time
    from pathlib import Path

    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)
