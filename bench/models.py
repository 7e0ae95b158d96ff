"""Forward+backward throughput and compile time of jcxr.models on this machine's JAX backend.

    python bench/models.py [--archs resnet34,densenet121,efficientnet_b0] [--resolution 224]
                           [--batch 8] [--steps 5] [--dtype float32|bfloat16]

One jit'ed step = forward, loss, gradients (train mode: batch statistics). Prints a markdown
table for docs/benchmarks.md.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from jcxr import models


def measure(arch, resolution, batch, steps, dtype):
    model = models.create(arch, num_outputs=1, dtype=dtype)
    model.train()

    @nnx.jit
    def step(model, x, y):
        def loss(m):
            logits = m(x)[:, 0]
            return jnp.mean(
                jnp.maximum(logits, 0) - logits * y + jnp.log1p(jnp.exp(-jnp.abs(logits)))
            )

        return nnx.grad(loss)(model)

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, resolution, resolution, 3)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, batch), jnp.float32)
    start = time.perf_counter()
    jax.block_until_ready(step(model, x, y))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        jax.block_until_ready(step(model, x, y))
        times.append(time.perf_counter() - start)
    return compile_s, batch / statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="resnet34,densenet121,efficientnet_b0")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
    print(describe(), f"| JAX {jax.__version__} on {jax.devices()[0].device_kind}")
    print("| arch | resolution | batch | dtype | compile + first step (s) | images/s (fwd+bwd) |")
    print("|---|---|---|---|---|---|")
    for arch in args.archs.split(","):
        compile_s, rate = measure(arch, args.resolution, args.batch, args.steps, dtype)
        print(
            f"| {arch} | {args.resolution} | {args.batch} | {args.dtype} | {compile_s:.1f} | "
            f"{rate:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
