"""What precise BatchNorm statistics cost per epoch: recomputing them over N training images
against training on N images, with the sweep's own step (:class:`jcxr.train.step.Steps`).

    python bench/precise_bn.py [--archs resnet_tiny,resnet34] [--resolutions 64,128]
                               [--images 256] [--batch 32] [--group 8]

Both run after a warm-up (compile excluded): the train step on ``--images`` images in effective
batches of ``--batch`` (one microbatch each, BatchNorm groups of ``--group``), and
``Steps.recompute_batchnorm`` over the same number in microbatches of ``--batch``. Prints a
markdown table: seconds for each and their ratio.
"""

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from jcxr import models
from jcxr.train.step import Steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="resnet_tiny,resnet34")
    parser.add_argument("--resolutions", default="64,128")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--group", type=int, default=8)
    args = parser.parse_args()
    print(describe(), "|", jax.default_backend())
    print(f"\n{args.images} images, batches of {args.batch}, BatchNorm groups of {args.group}\n")
    print("| arch | px | train (s) | precise BN (s) | precise / train |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for arch in args.archs.split(","):
        for resolution in map(int, args.resolutions.split(",")):
            model = models.create(arch, rngs=nnx.Rngs(0))
            steps = Steps(model, optax.adam(1e-4), effective_batch_size=args.batch,
                          microbatch_size=args.batch, augmentation=None, seed=0,
                          dtype=jnp.float32, positive_weight=1.0,
                          batchnorm_group=args.group)  # fmt: skip
            n = args.images // args.batch
            pixels = [rng.integers(0, 256, (args.batch, resolution, resolution), np.uint8)
                      for _ in range(n)]  # fmt: skip
            labels = (rng.random(args.batch) < 0.3).astype(np.float32)
            jax.block_until_ready(steps.step(pixels[0], labels, 0))  # compile
            steps.recompute_batchnorm(pixels[:1])
            start = time.perf_counter()
            for i, p in enumerate(pixels):
                metrics = steps.step(p, labels, i + 1)
            jax.block_until_ready(metrics)
            train = time.perf_counter() - start
            start = time.perf_counter()
            steps.recompute_batchnorm(pixels)
            jax.block_until_ready(steps.others)
            precise = time.perf_counter() - start
            print(
                f"| {arch} | {resolution} | {train:.2f} | {precise:.2f} | {precise / train:.2f} |"
            )


if __name__ == "__main__":
    main()
