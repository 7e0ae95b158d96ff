"""jcxr's CPU convolution and max-pooling paths, layer by layer, against XLA's own, forward and
backward (``jcxr.models.layers.conv_general_dilated``, ``jcxr.models.pooling.max_pool``), and
the first convolution on grey input (``jcxr.models.inputs.input_conv``).

    python bench/conv_paths.py [--kind depthwise|depthwise-kernel|pointwise|maxpool|stem]
        [--batch 32]

``depthwise``: EfficientNet-B0's depthwise convolutions at 64 px as shifted slices, against
XLA's grouped convolution. ``depthwise-kernel``: the same layers as shifted slices, with XLA's
gradient of them against the kernel gradient by jcxr's CPU kernel (``jcxr.models.cpu_kernels``,
what training uses). ``pointwise``: 1 x 1 convolutions as one matmul over the pixels,
from DenseNet121 (bottlenecks and transitions), EfficientNet-B0 (expand and project) and
ResNet34 (stride-2 shortcuts) at 64 and 128 px. ``maxpool``: the stem pooling of ResNet and
DenseNet (3 x 3, stride 2, padding 1, 64 channels) at 64, 128 and 224 px, and Xception's three
at 64 px, with the gradient as shifted slices against XLA's select-and-scatter; the input is
ReLU'd (ties at zero, as in the networks). ``stem``: the first convolution of ResNet and
DenseNet (7 x 7, stride 2, 64 channels) and of EfficientNet-B0 (3 x 3, stride 2, 32 channels) at
64, 128 and 224 px, on the grey image (one channel: im2col + one matmul on the CPU) against on
its normalised RGB copy (what the models took before; the normalisation is timed with it);
"bwd" there is the kernel's gradient, all that training needs of a stem.

Rows are (map, input channels, output channels, kernel, stride). Each layer is timed over 5
calls after one warm-up call, jit-compiled; "bwd" is the gradient of a loss on the output with
respect to every input (it includes the forward). "diff" is the largest output difference
relative to the largest output. Prints a markdown table for docs/benchmarks.md.
"""

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from jcxr.models import layers
from jcxr.models.inputs import grey, input_conv, normalise
from jcxr.models.layers import conv, conv_general_dilated
from jcxr.models.pooling import _reduce_window_max, max_pool

DEPTHWISE = [(32, 32, 32, 3, 1), (32, 96, 96, 3, 2), (16, 144, 144, 3, 1), (16, 144, 144, 5, 2),
             (8, 240, 240, 5, 1), (8, 240, 240, 3, 2), (4, 480, 480, 3, 1), (4, 480, 480, 5, 1),
             (4, 672, 672, 5, 1), (4, 672, 672, 5, 2), (2, 1152, 1152, 5, 1),
             (2, 1152, 1152, 3, 1)]  # fmt: skip
LAYERS = {
    "depthwise": DEPTHWISE,
    "depthwise-kernel": DEPTHWISE,
    "pointwise": [(16, 64, 128, 1, 1), (16, 256, 128, 1, 1), (8, 512, 128, 1, 1),
                  (8, 512, 256, 1, 1), (4, 1024, 128, 1, 1), (32, 128, 128, 1, 1),
                  (32, 512, 128, 1, 1), (16, 1024, 128, 1, 1), (32, 16, 96, 1, 1),
                  (16, 144, 24, 1, 1), (8, 240, 40, 1, 1), (4, 672, 112, 1, 1),
                  (16, 64, 128, 1, 2), (8, 128, 256, 1, 2), (32, 64, 128, 1, 2)],
    "maxpool": [(32, 64, 64, 3, 2), (64, 64, 64, 3, 2), (112, 64, 64, 3, 2), (32, 128, 128, 3, 2),
                (16, 256, 256, 3, 2), (8, 728, 728, 3, 2)],
    "stem": [(64, 3, 64, 7, 2), (128, 3, 64, 7, 2), (224, 3, 64, 7, 2), (64, 3, 32, 3, 2),
             (128, 3, 32, 3, 2), (224, 3, 32, 3, 2)],
}  # fmt: skip
DIMS = ("NHWC", "HWIO", "NHWC")


def milliseconds(function, *arguments, calls=5):
    jax.block_until_ready(function(*arguments))
    start = time.perf_counter()
    for _ in range(calls):
        out = function(*arguments)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls * 1e3


def paths(kind, x, out, kernel, stride, rng):
    """[(XLA's function, its arguments), (jcxr's, the same arguments)] for one row."""
    if kind == "maxpool":
        x = jax.nn.relu(x)
        return [
            (lambda x, f=f: f(x, kernel, stride, 1), (x,)) for f in (_reduce_window_max, max_pool)
        ]
    if kind == "stem":
        graph, params = nnx.split(conv(3, out, kernel, stride=stride, rngs=nnx.Rngs(0)))
        images = jax.nn.sigmoid(x[..., 0])  # grey in [0, 1]
        return [
            (lambda params, x, f=f: input_conv(nnx.merge(graph, params), f(x)), (params, images))
            for f in (normalise, grey)
        ]
    channels = x.shape[-1]
    pad = (kernel - 1) // 2
    if kind == "depthwise-kernel":
        w = jnp.asarray(rng.normal(size=(kernel, kernel, 1, out)), jnp.float32)
        strides, padding = (stride, stride), ((pad, pad), (pad, pad))
        return [(lambda x, w, f=f: f(x, w, strides, padding), (x, w))
                for f in (layers._shifted_slices, layers._depthwise)]  # fmt: skip
    groups = channels if kind == "depthwise" else 1
    w = jnp.asarray(rng.normal(size=(kernel, kernel, channels // groups, out)), jnp.float32)
    conv_args = ((stride, stride), ((pad, pad), (pad, pad)))
    return [
        (lambda x, w, conv=conv: conv(x, w, *conv_args, dimension_numbers=DIMS,
                                      feature_group_count=groups), (x, w))
        for conv in (jax.lax.conv_general_dilated, conv_general_dilated)
    ]  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(LAYERS), default="depthwise")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(describe(), f"| JAX {jax.__version__} on {jax.default_backend()} | batch {args.batch}\n")
    names = {"depthwise": ("XLA", "shifts"), "depthwise-kernel": ("XLA's gradient", "kernel"),
             "pointwise": ("XLA", "matmul"),
             "maxpool": ("XLA", "sliced gradient"), "stem": ("RGB", "grey")}[args.kind]  # fmt: skip
    print(f"| map | in | out | kernel | stride | {names[0]} fwd / bwd (ms) | {names[1]} fwd / bwd "
          "(ms) | diff |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    totals = np.zeros((2, 2))
    for size, channels, out, kernel, stride in LAYERS[args.kind]:
        x = jnp.asarray(rng.normal(size=(args.batch, size, size, channels)), jnp.float32)
        outputs, cells = [], []
        for i, (forward, arguments) in enumerate(paths(args.kind, x, out, kernel, stride, rng)):
            fwd = jax.jit(forward)
            argnums = (0,) if args.kind == "stem" else tuple(range(len(arguments)))
            bwd = jax.jit(jax.grad(lambda *a, f=forward: jnp.sum(f(*a) ** 2), argnums))
            times = milliseconds(fwd, *arguments), milliseconds(bwd, *arguments)
            totals[i] += times
            outputs.append(fwd(*arguments))
            cells.append(f"{times[0]:.2f} / {times[1]:.2f}")
        diff = float(jnp.abs(outputs[1] - outputs[0]).max() / jnp.abs(outputs[0]).max())
        print(f"| {size} | {channels} | {out} | {kernel} | {stride} | {cells[0]} | {cells[1]} | "
              f"{diff:.1e} |", flush=True)  # fmt: skip
    print(f"| all | | | | | {totals[0, 0]:.0f} / {totals[0, 1]:.0f} | "
          f"{totals[1, 0]:.0f} / {totals[1, 1]:.0f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
