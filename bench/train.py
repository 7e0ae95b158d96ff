"""Training throughput of jcxr's real train step, per (architecture, resolution, dtype, microbatch).

    python bench/train.py [--archs resnet34,densenet121,efficientnet_b0]
                          [--resolutions 64,224,320,512] [--dtypes float32,bfloat16]
                          [--effective-batch 32] [--microbatch auto] [--steps 10]
                          [--no-augment] [--pipeline] [--json OUT.jsonl]

The step is the one a sweep runs (:class:`jcxr.train.step.Steps`): uint8 pixels in, augmentation
and normalisation on device, microbatch accumulation, one Adam update, donated buffers, on every
local device (data-parallel mesh). Reported per cell:

- compile + first step (s); images/s over ``--steps`` steps after two warm-up steps (timed
  from dispatch of the first to completion of the last, so host and device overlap as in a run);
- memory per device: XLA's compiled estimate, and the allocator's peak where the backend has one;
- with ``--pipeline``: the same steps fed by the grain Loader from phantom shards, and the
  device's idle share of step time, ``1 - synthetic_time / loader_time``.

Prints a markdown table; ``--json`` appends one JSON object per cell (read by
``bench/torch_reference.py --compare``).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

sys.path.insert(0, str(Path(__file__).parent))
from _machine import append_jsonl, describe

from jcxr import models
from jcxr.data.augment import Augmentation
from jcxr.train import memory, parallel
from jcxr.train.step import Steps


def build(arch, dtype, mesh, augment, effective):
    model = models.create(arch, num_outputs=1, head="linear", dtype=dtype, rngs=nnx.Rngs(0))
    return Steps(
        model,
        optax.adam(1e-4),
        effective_batch_size=effective,
        microbatch_size=memory.candidates(effective, mesh.size)[0],
        augmentation=Augmentation() if augment else None,
        seed=0,
        dtype=dtype,
        positive_weight=1.0,
        mesh=mesh,
    )


def timed_steps(steps, batches, n):
    """Seconds for ``n`` steps over ``batches`` (an iterator of (pixels, labels))."""
    start = time.perf_counter()
    metrics = None
    for i in range(n):
        pixels, labels = next(batches)
        metrics = steps.step(pixels, labels, i)
    jax.block_until_ready(metrics)
    return time.perf_counter() - start


def measure(arch, resolution, dtype_name, effective, microbatch, n_steps, mesh, shards, augment):
    dtype = jnp.bfloat16 if dtype_name == "bfloat16" else jnp.float32
    steps = build(arch, dtype, mesh, augment, effective)
    if microbatch == "auto":
        microbatch = memory.choose_microbatch(
            steps,
            key=f"{arch}|linear|{dtype_name}|remat=False",
            resolution=resolution,
            budget_bytes=memory.device_budget(mesh.devices.flat[0], 0.85),
            log=lambda *_: None,
        )
    steps.set_microbatch_size(int(microbatch))
    estimate = steps.memory_bytes(steps.microbatch_size, resolution)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (effective, resolution, resolution), dtype=np.uint8)
    labels = (rng.random(effective) < 0.5).astype(np.float32)

    def synthetic():
        while True:
            yield pixels, labels

    start = time.perf_counter()
    jax.block_until_ready(steps.step(pixels, labels, 0))
    compile_s = time.perf_counter() - start
    timed_steps(steps, synthetic(), 2)  # warm-up
    seconds = timed_steps(steps, synthetic(), n_steps)
    row = {
        "arch": arch,
        "resolution": resolution,
        "dtype": dtype_name,
        "effective_batch": effective,
        "microbatch": steps.microbatch_size,
        "microbatches": steps.microbatches,
        "devices": mesh.size,
        "augment": augment,
        "compile_s": compile_s,
        "images_per_s": n_steps * effective / seconds,
        "memory_estimate_mib": estimate / 2**20,
    }
    stats = mesh.devices.flat[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        row["peak_memory_mib"] = stats["peak_bytes_in_use"] / 2**20
    if shards is not None:
        from jcxr.data.pipeline import Loader
        from jcxr.data.shards import read_index

        records = len(read_index(shards, resolution))
        loader = Loader(
            shards,
            resolution,
            np.arange(records),
            np.zeros(records, np.float32),
            effective,
            train=True,
        )

        def fed():
            while True:
                for batch in loader:
                    yield batch["pixels"], batch["label"]

        batches = fed()
        timed_steps(steps, batches, 2)
        with_loader = timed_steps(steps, batches, n_steps)
        row["loader_images_per_s"] = n_steps * effective / with_loader
        row["device_idle"] = max(0.0, 1.0 - seconds / with_loader)
    return row


def phantom_shards(resolutions, images, workdir):
    from jcxr.data import nih, phantom, shards

    root, out = workdir / "phantoms", workdir / "shards"
    phantom.generate(root, images, seed=0)
    shards.prepare(nih.read_metadata(root), root, out, resolutions, progress=False)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="resnet34,densenet121,efficientnet_b0")
    parser.add_argument("--resolutions", default="64,224,320,512")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--effective-batch", type=int, default=32)
    parser.add_argument("--microbatch", default="auto", help="an integer or 'auto'")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-augment", action="store_true", help="skip on-device augmentation")
    parser.add_argument("--pipeline", action="store_true", help="also feed from phantom shards")
    parser.add_argument("--pipeline-images", type=int, default=512)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path, help="append one JSON object per cell")
    args = parser.parse_args()
    resolutions = [int(r) for r in args.resolutions.split(",")]
    mesh = parallel.make_mesh(jax.local_devices())
    shards = None
    if args.pipeline:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="jcxr-bench-train-"))
        shards = phantom_shards(resolutions, args.pipeline_images, work)
    device = jax.local_devices()[0]
    print(
        describe(),
        f"| JAX {jax.__version__} | {mesh.size} x {device.device_kind} ({device.platform})",
    )
    print(
        "| arch | px | dtype | microbatch x steps | compile (s) | images/s | "
        "memory estimate (MiB/device) | peak (MiB) | fed by Loader (images/s) | device idle |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arch in args.archs.split(","):
        for resolution in resolutions:
            for dtype in args.dtypes.split(","):
                row = measure(
                    arch,
                    resolution,
                    dtype,
                    args.effective_batch,
                    args.microbatch,
                    args.steps,
                    mesh,
                    shards,
                    not args.no_augment,
                )
                row["machine"] = describe()
                row["backend"] = f"{mesh.size} x {device.device_kind}"
                peak = f"{row['peak_memory_mib']:,.0f}" if "peak_memory_mib" in row else "-"
                fed = f"{row['loader_images_per_s']:,.1f}" if shards is not None else "-"
                idle = f"{row['device_idle']:.1%}" if shards is not None else "-"
                split = f"{row['microbatch']} x {row['microbatches']}"
                print(
                    f"| {arch} | {resolution} | {dtype} | {split} | "
                    f"{row['compile_s']:.1f} | {row['images_per_s']:,.1f} | "
                    f"{row['memory_estimate_mib']:,.0f} | {peak} | {fed} | {idle} |",
                    flush=True,
                )
                append_jsonl(args.json, row)


if __name__ == "__main__":
    main()
