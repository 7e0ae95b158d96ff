"""Test-wide settings: CPU JAX with a persistent compilation cache, W&B disabled."""

import os
from pathlib import Path

_CACHE = Path(os.environ.get("JCXR_CACHE_DIR", Path.home() / ".cache" / "jcxr"))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE / "jax-compilation-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("WANDB_MODE", "disabled")
