"""Depthwise convolutions on CPU, layer by layer: XLA's grouped convolution against jcxr's
shifted slices (``jcxr.models.layers.conv_general_dilated``), forward and backward.

    python bench/depthwise.py [--batch 32]

The layers are EfficientNet-B0's depthwise convolutions at 64 px (map, channels, kernel,
stride). Each is timed over 5 calls after one warm-up call, jit-compiled; "diff" is the largest
output difference relative to the largest output. Prints a markdown table for
docs/benchmarks.md.
"""

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from jcxr.models.layers import conv_general_dilated

LAYERS = [(32, 32, 3, 1), (32, 96, 3, 2), (16, 144, 3, 1), (16, 144, 5, 2), (8, 240, 5, 1),
          (8, 240, 3, 2), (4, 480, 3, 1), (4, 480, 5, 1), (4, 672, 5, 1), (4, 672, 5, 2),
          (2, 1152, 5, 1), (2, 1152, 3, 1)]  # fmt: skip
DIMS = ("NHWC", "HWIO", "NHWC")


def milliseconds(function, *arguments, calls=5):
    jax.block_until_ready(function(*arguments))
    start = time.perf_counter()
    for _ in range(calls):
        out = function(*arguments)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(describe(), f"| JAX {jax.__version__} on {jax.default_backend()} | batch {args.batch}\n")
    print(
        "| map | channels | kernel | stride | XLA fwd / bwd (ms) | shifts fwd / bwd (ms) | diff |"
    )
    print("|---|---|---|---|---|---|---|")
    totals = np.zeros((2, 2))
    for size, channels, kernel, stride in LAYERS:
        x = jnp.asarray(rng.normal(size=(args.batch, size, size, channels)), jnp.float32)
        w = jnp.asarray(rng.normal(size=(kernel, kernel, 1, channels)), jnp.float32)
        pad = (kernel - 1) // 2
        conv_args = ((stride, stride), ((pad, pad), (pad, pad)))
        outputs, cells = [], []
        for i, conv in enumerate((jax.lax.conv_general_dilated, conv_general_dilated)):

            def forward(x, w, conv=conv, conv_args=conv_args, groups=channels):
                return conv(x, w, *conv_args, dimension_numbers=DIMS, feature_group_count=groups)

            fwd = jax.jit(forward)
            bwd = jax.jit(jax.grad(lambda x, w, f=forward: jnp.sum(f(x, w) ** 2), (0, 1)))
            times = milliseconds(fwd, x, w), milliseconds(bwd, x, w)
            totals[i] += times
            outputs.append(fwd(x, w))
            cells.append(f"{times[0]:.2f} / {times[1]:.2f}")
        diff = float(jnp.abs(outputs[1] - outputs[0]).max() / jnp.abs(outputs[0]).max())
        print(f"| {size} | {channels} | {kernel} | {stride} | {cells[0]} | {cells[1]} | "
              f"{diff:.1e} |", flush=True)  # fmt: skip
    print(f"| all | | | | {totals[0, 0]:.0f} / {totals[0, 1]:.0f} | "
          f"{totals[1, 0]:.0f} / {totals[1, 1]:.0f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
