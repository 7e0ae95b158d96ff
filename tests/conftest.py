"""Test-wide settings: CPU JAX with a persistent compilation cache, W&B disabled."""

import os
from pathlib import Path

_CACHE = Path(os.environ.get("JCXR_CACHE_DIR", Path.home() / ".cache" / "jcxr"))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE / "jax-compilation-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("WANDB_MODE", "disabled")

import pytest  # noqa: E402  (after the environment above, which JAX reads at import)


@pytest.fixture(scope="session")
def phantom_shards(tmp_path_factory):
    """240 phantoms (NIH layout) prepared at 32 and 48 px, shared by the training tests."""
    from jcxr.data import nih, phantom, shards

    root = tmp_path_factory.mktemp("phantoms")
    phantom.generate(root, 240, seed=2, workers=1)
    out = tmp_path_factory.mktemp("shards")
    shards.prepare(nih.read_metadata(root), root, out, [32, 48], workers=1, progress=False)
    return out
