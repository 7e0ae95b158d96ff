"""Where a train step's time goes, jcxr beside PyTorch: the profile behind the speed ratios.

    python bench/profile_step.py [--archs resnet34,densenet121,efficientnet_b0]
        [--resolutions 64,128] [--effective-batch 32] [--steps 3]
        [--torch-python /path/to/python-with-torch]

jcxr's step (``bench/train.py``'s build, no augmentation) runs under ``jax.profiler``; every
XLA:CPU thunk it executes is put in a category by reading the compiled HLO: convolution
forward, convolution gradient with respect to the input and to the weights, the layout
transposes XLA adds around them, matmuls, and everything else (BatchNorm, activations, the
optimiser). PyTorch's eager fp32 step (``bench/torch_reference.py --profile``, run in
``--torch-python``) goes through ``torch.profiler`` with the same categories (its convolution
backward computes both gradients in one op).

Both sides run their ops on 2 threads, so per-op times add up to more than the step. Each
category is shown as wall milliseconds per step: its share of the op time summed over threads,
times the measured wall time of a step.
"""

import argparse
import collections
import glob
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe
from train import build

from jcxr.train import parallel

HERE = Path(__file__).parent
CATEGORIES = ("conv forward", "conv grad input", "conv grad weights", "conv backward (both)",
              "layout transposes", "matmul", "other")  # fmt: skip


def hlo_categories(hlo: str, batch: int) -> dict[str, str]:
    """Category of every instruction of a compiled HLO module that the thunks are named after.

    A convolution whose output does not lead with the batch dimension is a weight gradient
    (XLA's layout pass rewrites those and may drop their metadata); of the rest, the ones JAX's
    transpose rule made (metadata ``transpose(jvp(...))``) are input gradients, the others
    forward. A weight gradient with as many input channels as the batch has images would count
    as an input gradient or forward: profile at a batch no layer's width equals."""
    bodies = dict(re.findall(r"\n%?([\w.-]+) \([^\n]*\{\n(.*?)\n\}", hlo, re.S))
    categories = {}
    for line in hlo.splitlines():
        match = re.match(r"\s*(?:ROOT )?%?([\w.-]+) = (\S+) (\w[\w-]*)\(", line)
        if not match:
            continue
        name, shape, opcode = match.groups()
        called = re.search(r"calls=%?([\w.-]+)", line)
        body = bodies.get(called.group(1), "") if called else line
        if " convolution(" in body or opcode == "convolution":
            if not re.match(rf"\w+\[{batch},", shape):
                categories[name] = "conv grad weights"
            elif "transpose(jvp" in line:
                categories[name] = "conv grad input"
            else:
                categories[name] = "conv forward"
        elif " dot(" in body or opcode == "dot":
            categories[name] = "matmul"
        elif name.startswith("transpose") or " transpose(" in body:
            categories[name] = "layout transposes"
    return categories


def jcxr_profile(arch: str, resolution: int, effective: int, n_steps: int) -> dict:
    steps = build(arch, jnp.float32, parallel.first_device_mesh(), False, effective)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (effective, resolution, resolution), dtype=np.uint8)
    labels = (rng.random(effective) < 0.5).astype(np.float32)
    for i in range(2):
        jax.block_until_ready(steps.step(pixels, labels, i))
    # the compiled HLO names the thunks; train_arguments places the arguments as step does, so
    # this lowers the program the warm-up compiled and takes it from the in-process cache
    categories = hlo_categories(
        steps.train_step.lower(*steps.train_arguments(effective, resolution)).compile().as_text(),
        steps.microbatch_size,
    )
    with tempfile.TemporaryDirectory(prefix="jcxr-profile-") as trace:
        jax.profiler.start_trace(trace)
        start = time.perf_counter()
        for i in range(n_steps):
            metrics = steps.step(pixels, labels, 2 + i)
        jax.block_until_ready(metrics)
        wall = (time.perf_counter() - start) / n_steps
        jax.profiler.stop_trace()
        profile = jax.profiler.ProfileData.from_file(
            sorted(glob.glob(f"{trace}/**/*.xplane.pb", recursive=True))[-1]
        )
    totals = collections.Counter()
    for plane in profile.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):  # the threads that run XLA's thunks
                continue
            for event in line.events:
                if event.name.startswith(("ThunkExecutor", "SlinkyThreadPool")):
                    continue  # the executor's own spans enclose or wait on the thunks
                totals[categories.get(event.name, "other")] += event.duration_ns
    return {"wall_ms": wall * 1000, "op_ns": dict(totals)}


def header() -> str:
    return ("| arch | px | framework | step (ms) | " + " | ".join(CATEGORIES) + " |\n"
            "|---|---|---|---|" + "---|" * len(CATEGORIES))  # fmt: skip


def line(row) -> str:
    """One table row: each category's share of the summed op time, in wall ms per step."""
    total = sum(row["op_ns"].values()) or 1
    cells = []
    for category in CATEGORIES:
        ns = row["op_ns"].get(category)
        cells.append("-" if ns is None else f"{row['wall_ms'] * ns / total:,.0f}")
    return (f"| {row['arch']} | {row['resolution']} | {row['framework']} | "
            f"{row['wall_ms']:,.0f} | " + " | ".join(cells) + " |")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="resnet34,densenet121,efficientnet_b0")
    parser.add_argument("--resolutions", default="64,128")
    parser.add_argument("--effective-batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--torch-python", help="an interpreter with torch and torchvision")
    args = parser.parse_args()
    print(describe(), f"| JAX {jax.__version__} on {jax.default_backend()} | "
          f"batch {args.effective_batch}, fp32, {args.steps} profiled steps\n")  # fmt: skip
    print(header(), flush=True)
    for arch in args.archs.split(","):
        for resolution in map(int, args.resolutions.split(",")):
            row = jcxr_profile(arch, resolution, args.effective_batch, args.steps)
            print(line({"arch": arch, "resolution": resolution, "framework": "jcxr", **row}),
                  flush=True)  # fmt: skip
            if args.torch_python:
                out = subprocess.run(
                    [args.torch_python, str(HERE / "torch_reference.py"), "--profile",
                     "--archs", arch, "--resolutions", str(resolution), "--effective-batch",
                     str(args.effective_batch), "--microbatch", str(args.effective_batch),
                     "--steps", str(args.steps)],
                    check=True, capture_output=True, text=True,
                ).stdout  # fmt: skip
                print(line(json.loads(out.strip().splitlines()[-1])), flush=True)


if __name__ == "__main__":
    main()
