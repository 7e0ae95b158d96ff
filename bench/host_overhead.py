"""Host overhead of the training loop: steps/s when the device has almost nothing to do.

    python bench/host_overhead.py [--steps 2000] [--log-every 50] [--batch 8]

The loop is the sweep's own (``jcxr.train.cell._train_epoch``: device dataset -> ``Steps.step``
-> progress -> a metrics fetch every ``--log-every`` steps), with the data already on the
device. The model is a probe so small that its compute is negligible (the mean pixel through
one dense layer), so the rate measures Python, dispatch and the loop's transfers: what a GPU
would wait on. Also timed: the bare ``Steps.step`` on one device batch (dispatch alone), and
resnet_tiny at 32 px for scale. Prints a markdown table for docs/benchmarks.md.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from jcxr import models
from jcxr.data import nih, phantom, shards
from jcxr.data.device import DeviceDataset
from jcxr.data.pipeline import Loader
from jcxr.results import Cell
from jcxr.tracking import Tracker
from jcxr.train import cell as cell_module
from jcxr.train.config import defaults
from jcxr.train.optim import make_optimizer
from jcxr.train.step import Steps


class Probe(nnx.Module):
    """``[B, R, R, 3]`` -> one logit from the mean pixel: compute of a few hundred FLOPs."""

    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(3, 1, rngs=rngs)

    def __call__(self, x):
        return self.dense(jnp.mean(x.astype(jnp.float32), axis=(1, 2)))


def loop_rate(model, shard_dir, resolution, batch, n_steps, log_every) -> float:
    """Steps/s of the sweep's loop over ``n_steps`` (after one compiled warm-up epoch)."""
    config = defaults()
    config.train.log_every, config.train.checkpoint_every = log_every, 10**9
    config.logging.wandb, config.logging.progress = "disabled", False
    labels = shards.read_index(shard_dir, resolution).label("Mass")
    records = np.flatnonzero(~np.isnan(labels))
    loader = DeviceDataset(Loader(shard_dir, resolution, records, labels, batch, train=True),
                           jax.devices()[0])  # fmt: skip
    epochs = -(-n_steps // loader.batches_per_epoch) + 1
    tx = make_optimizer(config.optim, loader.batches_per_epoch, epochs)
    steps = Steps(model, tx, effective_batch_size=batch, microbatch_size=batch,
                  augmentation=None, seed=0, dtype=jnp.float32, positive_weight=1.0)  # fmt: skip
    tracker = Tracker(config, Path(tempfile.mkdtemp()), progress=False)
    meta = {"step": 0, "epoch_loss": [0.0, 0]}
    cell = Cell("Mass", resolution, "probe", 0)
    cell_module._train_epoch(config, cell, steps, loader, meta, None, tracker)  # compiles
    start, first = time.perf_counter(), meta["step"]
    while meta["step"] - first < n_steps:
        loader.set_state({"epoch": loader.state["epoch"] + 1, "batch": 0})
        cell_module._train_epoch(config, cell, steps, loader, meta, None, tracker)
    jax.block_until_ready(steps.params)
    return (meta["step"] - first) / (time.perf_counter() - start)


def bare_rate(model, resolution, batch, n_steps) -> float:
    """Steps/s of ``Steps.step`` alone on one device batch (no loader, no logging)."""
    config = defaults()
    steps = Steps(model, make_optimizer(config.optim, 100, 10), effective_batch_size=batch,
                  microbatch_size=batch, augmentation=None, seed=0, dtype=jnp.float32,
                  positive_weight=1.0)  # fmt: skip
    pixels = jax.device_put(np.zeros((batch, resolution, resolution), np.uint8))
    labels = jax.device_put((np.arange(batch) % 2).astype(np.float32))
    jax.block_until_ready(steps.step(pixels, labels, 0))
    start = time.perf_counter()
    for i in range(1, n_steps + 1):
        metrics = steps.step(pixels, labels, i)
    jax.block_until_ready(metrics)
    return n_steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jcxr-bench-host-"))
    phantom.generate(work / "phantoms", 256, seed=0, workers=1)
    shard_dir = work / "shards"
    shards.prepare(nih.read_metadata(work / "phantoms"), work / "phantoms", shard_dir, [8, 32],
                   workers=1, progress=False)  # fmt: skip
    device = jax.devices()[0]
    print(describe(), f"| JAX {jax.__version__} | {device.device_kind} ({device.platform})")
    print(f"batch {args.batch}, metrics fetched every {args.log_every} steps\n")
    print("| model | px | loop | steps/s | ms/step |")
    print("|---|---|---|---|---|")
    cases = [("probe", 8, lambda: Probe(nnx.Rngs(0))),
             ("resnet_tiny", 32, lambda: models.create("resnet_tiny", num_outputs=1))]  # fmt: skip
    for name, px, make in cases:
        n = args.steps if name == "probe" else max(50, args.steps // 10)
        for loop, rate in (
            ("sweep loop (device dataset, logging)",
             loop_rate(make(), shard_dir, px, args.batch, n, args.log_every)),
            ("Steps.step alone", bare_rate(make(), px, args.batch, n)),
        ):  # fmt: skip
            print(f"| {name} | {px} | {loop} | {rate:,.0f} | {1000 / rate:.2f} |", flush=True)


if __name__ == "__main__":
    main()
