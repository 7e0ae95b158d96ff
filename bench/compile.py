"""Compile time of a cell's programs, cold and from the persistent cache, per (arch, resolution).

    python bench/compile.py [--archs resnet34,densenet121,efficientnet_b0]
                            [--resolutions 64,224] [--batch 32]

A sweep cell compiles three programs: the train step (effective batch = microbatch =
``--batch``), the eval step and the precise-BatchNorm moments step (``--batch`` images). Each is
traced and lowered (Python, never cached), then compiled: first cold into an empty persistent
cache, then again after ``jax.clear_caches()``, a load from that cache (what a rerun, a resume,
or the next seed of the same shape pays). Runs in the current ``XLA_FLAGS``. Prints a markdown
table for docs/benchmarks.md.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe
from train import build

from jcxr.train import parallel


def programs(steps, batch, resolution):
    """{name: (jitted function, abstract arguments)} of one cell."""
    flat = jax.ShapeDtypeStruct((batch, resolution, resolution), jnp.uint8,
                                sharding=parallel.batch_sharding(steps.mesh, axis=0))  # fmt: skip
    state = (steps.params, steps.others)
    return {
        "train": (steps.train_step, steps.train_arguments(batch, resolution)),
        "eval": (steps.eval_step, (*state, flat)),
        "moments": (steps.moments_step, (*state, flat)),
    }


def measure(arch, resolution, batch, mesh):
    steps = build(arch, jnp.float32, mesh, augment=False, effective=batch)  # microbatch = batch
    rows = []
    for name, (function, arguments) in programs(steps, batch, resolution).items():
        times = []
        for _ in ("cold", "warm"):
            jax.clear_caches()
            start = time.perf_counter()
            lowered = function.lower(*arguments)
            traced = time.perf_counter()
            lowered.compile()
            times.append((traced - start, time.perf_counter() - traced))
        rows.append((name, times[0][0], times[0][1], times[1][1]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="resnet34,densenet121,efficientnet_b0")
    parser.add_argument("--resolutions", default="64,224")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="jcxr-bench-compile-")
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    mesh = parallel.make_mesh(jax.local_devices())
    print(describe(), f"| JAX {jax.__version__} on {jax.default_backend()} | batch {args.batch}\n")
    print("| arch | px | program | trace + lower (s) | compile cold (s) | from cache (s) |")
    print("|---|---|---|---|---|---|")
    for arch in args.archs.split(","):
        for resolution in map(int, args.resolutions.split(",")):
            for name, trace, cold, warm in measure(arch, resolution, args.batch, mesh):
                print(f"| {arch} | {resolution} | {name} | {trace:.1f} | {cold:.1f} | "
                      f"{warm:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
