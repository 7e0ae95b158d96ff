"""jcxr's CPU convolution paths, layer by layer, against XLA's own convolution, forward and
backward (``jcxr.models.layers.conv_general_dilated``).

    python bench/conv_paths.py [--kind depthwise|pointwise] [--batch 32]

``depthwise``: EfficientNet-B0's depthwise convolutions at 64 px as shifted slices, against
XLA's grouped convolution. ``pointwise``: 1 x 1 convolutions as one matmul over the pixels,
from DenseNet121 (bottlenecks and transitions), EfficientNet-B0 (expand and project) and
ResNet34 (stride-2 shortcuts) at 64 and 128 px. Rows are (map, input channels, output channels,
kernel, stride). Each layer is timed over 5 calls after one warm-up call, jit-compiled; "bwd"
is the gradient of a loss on the output with respect to input and weights (it includes the
forward). "diff" is the largest output difference relative to the largest output. Prints a
markdown table for docs/benchmarks.md.
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

LAYERS = {
    "depthwise": [(32, 32, 32, 3, 1), (32, 96, 96, 3, 2), (16, 144, 144, 3, 1),
                  (16, 144, 144, 5, 2), (8, 240, 240, 5, 1), (8, 240, 240, 3, 2),
                  (4, 480, 480, 3, 1), (4, 480, 480, 5, 1), (4, 672, 672, 5, 1),
                  (4, 672, 672, 5, 2), (2, 1152, 1152, 5, 1), (2, 1152, 1152, 3, 1)],
    "pointwise": [(16, 64, 128, 1, 1), (16, 256, 128, 1, 1), (8, 512, 128, 1, 1),
                  (8, 512, 256, 1, 1), (4, 1024, 128, 1, 1), (32, 128, 128, 1, 1),
                  (32, 512, 128, 1, 1), (16, 1024, 128, 1, 1), (32, 16, 96, 1, 1),
                  (16, 144, 24, 1, 1), (8, 240, 40, 1, 1), (4, 672, 112, 1, 1),
                  (16, 64, 128, 1, 2), (8, 128, 256, 1, 2), (32, 64, 128, 1, 2)],
}  # fmt: skip
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
    parser.add_argument("--kind", choices=sorted(LAYERS), default="depthwise")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(describe(), f"| JAX {jax.__version__} on {jax.default_backend()} | batch {args.batch}\n")
    ours = "shifts" if args.kind == "depthwise" else "matmul"
    print(f"| map | in | out | kernel | stride | XLA fwd / bwd (ms) | {ours} fwd / bwd (ms) | "
          "diff |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    totals = np.zeros((2, 2))
    for size, channels, out, kernel, stride in LAYERS[args.kind]:
        groups = channels if args.kind == "depthwise" else 1
        x = jnp.asarray(rng.normal(size=(args.batch, size, size, channels)), jnp.float32)
        w = jnp.asarray(rng.normal(size=(kernel, kernel, channels // groups, out)), jnp.float32)
        pad = (kernel - 1) // 2
        conv_args = ((stride, stride), ((pad, pad), (pad, pad)))
        outputs, cells = [], []
        for i, conv in enumerate((jax.lax.conv_general_dilated, conv_general_dilated)):

            def forward(x, w, conv=conv, conv_args=conv_args, groups=groups):
                return conv(x, w, *conv_args, dimension_numbers=DIMS, feature_group_count=groups)

            fwd = jax.jit(forward)
            bwd = jax.jit(jax.grad(lambda x, w, f=forward: jnp.sum(f(x, w) ** 2), (0, 1)))
            times = milliseconds(fwd, x, w), milliseconds(bwd, x, w)
            totals[i] += times
            outputs.append(fwd(x, w))
            cells.append(f"{times[0]:.2f} / {times[1]:.2f}")
        diff = float(jnp.abs(outputs[1] - outputs[0]).max() / jnp.abs(outputs[0]).max())
        print(f"| {size} | {channels} | {out} | {kernel} | {stride} | {cells[0]} | {cells[1]} | "
              f"{diff:.1e} |", flush=True)  # fmt: skip
    print(f"| all | | | | | {totals[0, 0]:.0f} / {totals[0, 1]:.0f} | "
          f"{totals[1, 0]:.0f} / {totals[1, 1]:.0f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
