"""XLA:CPU's options, measured: train-step speed, cold compile time and numerics per flag set.

    python bench/xla_flags.py [--archs resnet34,densenet121,efficientnet_b0] [--resolution 64]
                              [--sets plain,onednn,...] [--steps 3]
    python bench/xla_flags.py --compile-only --archs resnet34,densenet121 --resolution 224

Each flag set runs in its own process (``XLA_FLAGS`` is read once, when the backend starts) with
no persistent compilation cache, so "compile" is a cold compile + first step. Speed comes from
``bench/train.py`` (the real train step, effective batch 32, no augmentation, fp32). Numerics:
each architecture's eval logits and train-mode gradients on one fixed batch, compared with the
plain set's (max |difference| relative to the largest value). A set XLA rejects is reported as
failed. ``--compile-only``: the cold lower + compile time of the real train step (effective
batch and microbatch 32) per flag set, nothing run. Prints a markdown table for
docs/benchmarks.md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
SETS = {
    "plain": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "onednn_custom_call": "--xla_cpu_use_onednn=true "
    "--xla_cpu_experimental_onednn_custom_call=true",
    "onednn_fusion": "--xla_cpu_experimental_onednn_fusion_type=dot,eltwise",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "xnn_fusion": "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce",
    "xnn_graph": "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "ynn_fusion": "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce",
    "fast_math": "--xla_cpu_enable_fast_math=true",
    # compile time
    "llvm_cheap": "--xla_llvm_disable_expensive_passes=true",
    "backend_O1": "--xla_backend_optimization_level=1",
    "codegen_split_4": "--xla_cpu_parallel_codegen_split_count=4",
    "codegen_split_2": "--xla_cpu_parallel_codegen_split_count=2",
    "preset_fast_compile": "--xla_cpu_opt_preset=CPU_OPT_PRESET_FAST_COMPILE",
    "no_fusion_emitters": "--xla_cpu_use_fusion_emitters=false",
}


def compile_seconds(archs, resolution):
    """(child) cold lower + compile seconds of each arch's real train step -> JSON lines."""
    import time

    import jax
    import numpy as np
    import optax
    from flax import nnx

    from jcxr import models
    from jcxr.train import parallel
    from jcxr.train.step import Steps

    mesh = parallel.make_mesh(jax.local_devices())
    for arch in archs:
        model = models.create(arch, num_outputs=1, rngs=nnx.Rngs(0))
        steps = Steps(model, optax.adam(1e-4), effective_batch_size=32, microbatch_size=32,
                      augmentation=None, seed=0, dtype=np.float32, positive_weight=1.0,
                      mesh=mesh)  # fmt: skip
        start = time.perf_counter()
        steps.memory_bytes(32, resolution)  # lower + compile, nothing run
        print(json.dumps({"arch": arch, "compile_s": time.perf_counter() - start}), flush=True)


def numerics(archs, resolution, out):
    """(child) eval logits and train-mode gradients of each arch on one fixed batch -> npz."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from jcxr import models

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, resolution, resolution, 3)), jnp.float32)
    saved = {}
    for arch in archs:
        model = models.create(arch, num_outputs=1, rngs=nnx.Rngs(0))
        model.eval()
        saved[f"{arch}/logits"] = np.asarray(nnx.jit(lambda m, v: m(v))(model, x))
        model.train()
        grads = nnx.jit(nnx.grad(lambda m, v: jnp.sum(m(v) ** 2)))(model, x)
        flat = jax.tree.leaves(nnx.state(grads, nnx.Param))
        saved[f"{arch}/grads"] = np.concatenate([np.ravel(g) for g in flat])
    np.savez(out, **saved)


def run(flags, args, work):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["XLA_FLAGS"] = flags
    speed = work / f"speed-{abs(hash(flags))}.jsonl"
    numbers = work / f"numerics-{abs(hash(flags))}.npz"
    train = [sys.executable, str(HERE / "train.py"), "--archs", args.archs, "--resolutions",
             str(args.resolution), "--dtypes", "float32", "--effective-batch", "32",
             "--microbatch", "32", "--steps", str(args.steps), "--no-augment",
             "--json", str(speed)]  # fmt: skip
    check = [sys.executable, __file__, "--child", str(numbers), "--archs", args.archs,
             "--resolution", str(args.resolution)]  # fmt: skip
    for command in (train, check):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return None, done.stderr.strip().splitlines()[-1:] or ["failed"]
    rows = [json.loads(line) for line in speed.read_text().splitlines()]
    return rows, numbers


def compile_table(args):
    sys.path.insert(0, str(HERE))
    from _machine import describe

    print(describe(), f"| train step at {args.resolution} px, batch 32, cold compile\n")
    print("| set | XLA_FLAGS | arch | lower + compile (s) |")
    print("|---|---|---|---|")
    for name in args.sets.split(","):
        env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
        env["XLA_FLAGS"] = SETS[name]
        command = [sys.executable, __file__, "--child-compile", "--archs", args.archs,
                   "--resolution", str(args.resolution)]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"| {name} | `{SETS[name]}` | all | failed |")
            continue
        for line in done.stdout.splitlines():
            row = json.loads(line)
            print(f"| {name} | `{SETS[name]}` | {row['arch']} | {row['compile_s']:.1f} |",
                  flush=True)  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="resnet34,densenet121,efficientnet_b0")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--compile-only", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-compile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        numerics(args.archs.split(","), args.resolution, args.child)
        return
    if args.child_compile:
        compile_seconds(args.archs.split(","), args.resolution)
        return
    if args.compile_only:
        compile_table(args)
        return
    import numpy as np

    sys.path.insert(0, str(HERE))
    from _machine import describe

    print(describe(), f"| {args.resolution} px, effective batch 32, fp32, cold compiles\n")
    print("| set | XLA_FLAGS | arch | compile + first step (s) | images/s | vs plain | "
          "logits diff | grads diff |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    work = Path(tempfile.mkdtemp(prefix="jcxr-bench-flags-"))
    plain_rows, plain = None, None
    for name in args.sets.split(","):
        rows, numbers = run(SETS[name], args, work)
        if rows is None:
            print(f"| {name} | `{SETS[name]}` | all | failed: {numbers[0][:120]} | | | | |")
            continue
        if name == "plain":
            plain_rows, plain = rows, np.load(numbers)
        mine = np.load(numbers)
        for i, row in enumerate(rows):
            arch = row["arch"]
            ratio = "-"
            diffs = ["-", "-"]
            if plain is not None:
                ratio = f"{row['images_per_s'] / plain_rows[i]['images_per_s']:.2f}x"
                for j, kind in enumerate(("logits", "grads")):
                    a, b = mine[f"{arch}/{kind}"], plain[f"{arch}/{kind}"]
                    diffs[j] = f"{np.abs(a - b).max() / np.abs(b).max():.1e}"
            print(f"| {name} | `{SETS[name]}` | {arch} | {row['compile_s']:.1f} | "
                  f"{row['images_per_s']:.1f} | {ratio} | {diffs[0]} | {diffs[1]} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
