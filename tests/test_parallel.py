"""Data parallelism, per-device cell placement, multi-process training, device memory.

Multi-device runs use JAX's virtual CPU devices (``--xla_force_host_platform_device_count``),
which must be set before JAX starts, so they run in a fresh interpreter.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from .helpers import tiny_config

REPO = Path(__file__).parent.parent

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run_python(code: str, *, devices: int = 1, env: dict | None = None, timeout=900) -> dict:
    """Run ``code`` in a fresh interpreter with ``devices`` CPU devices; return its JSON output."""
    environment = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        # Virtual devices share this machine's cores with the other test worker; XLA:CPU ends
        # the process when a collective waits over 40 s for one device's thread, which a
        # starved thread did once in CI (3 of 4 arrived). Contention, not a deadlock: allow it.
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices} "
        "--xla_cpu_collective_call_terminate_timeout_seconds=900",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    }
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# the scripts import the shared helpers from the repository root
TINY = "from tests.helpers import tiny_config as tiny\n"


def test_data_parallel_step_equals_the_single_device_step():
    """BatchNorm in training mode: its batch statistics must span all four devices' images.

    Each of three steps starts both runs from the same state (the single-device one's) and
    compares what the step computes: loss, updated parameters, BatchNorm statistics and then
    predictions. Comparing two free-running trajectories instead compares the conditioning of
    training, not the step: measured on an AMD EPYC, parameters equal to 3e-8 after step 1 give
    gradient norms 1.5e-4 apart at step 2 (a dead channel's BatchNorm divides by sqrt(eps)).

    SGD, not Adam: Adam divides by sqrt(v), so for weights whose gradient is ~0 the rounding
    of a cross-device sum (1e-9) can flip the update's sign and become a learning-rate-sized
    difference.

    A smooth ResNet (SiLU for ReLU, average for max pooling): at a kink, rounding makes a
    discrete change. On an Intel Xeon, one input of layer4's last ReLU sat 8e-7 from zero at
    step 1; the two meshes' rounding put it on opposite sides, one channel's gradient then
    differed by that element's whole share, and the parameters were 5.6e-5 apart after one
    step from the same state. What is tested, the step's statistics and sums over devices,
    does not depend on the activation.

    The same with ghost BatchNorm (groups of 2 images, two per device: a group must never take
    statistics across devices) and for precise statistics recomputed on both meshes.
    """
    out = run_python(
        """
        import json, jax, jax.numpy as jnp, numpy as np, optax
        from flax import nnx
        from jcxr import models
        from jcxr.models import pooling, resnet
        from jcxr.train import parallel
        from jcxr.train.step import Steps

        resnet.relu = jax.nn.silu  # smooth: no kink for rounding to cross
        resnet.max_pool = lambda x, kernel, stride, padding: pooling.avg_pool(x, 2, 2)

        def steps(mesh, group):
            model = models.create("resnet_tiny", num_outputs=1, rngs=nnx.Rngs(3))
            return Steps(model, optax.sgd(0.05), effective_batch_size=32, microbatch_size=16,
                         augmentation=None, seed=0, dtype=jnp.float32, positive_weight=2.0,
                         batchnorm_group=group, mesh=mesh)

        def host(leaf):
            if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            return np.asarray(leaf, np.float64)
        diff = lambda x, y: max(float(np.max(np.abs(host(u) - host(v)), initial=0))
                                for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y)))
        def compare(group):
          one = steps(parallel.make_mesh(jax.devices()[:1]), group)
          four = steps(parallel.make_mesh(jax.devices()), group)
          rng = np.random.default_rng(0)
          losses, params, batchnorm, moved = [], [], [], []
          for step in range(3):
              before = jax.tree.map(host, one.params)
              # the same starting state on both (copies: the step donates its inputs)
              four.load_state(parallel.replicate(jax.tree.map(jnp.copy, one.state), four.mesh))
              pixels = rng.integers(0, 256, (32, 40, 40), dtype=np.uint8)
              labels = (rng.random(32) < 0.3).astype(np.float32)
              a, b = one.step(pixels, labels, step), four.step(pixels, labels, step)
              losses.append([float(a["loss"]), float(b["loss"])])
              params.append(diff(one.params, four.params))
              batchnorm.append(diff(one.others, four.others))
              moved.append(diff(one.params, before))
          pixels = rng.integers(0, 256, (64, 40, 40), dtype=np.uint8)
          predictions = np.max(np.abs(one.predict(pixels) - four.predict(pixels)))
          four.load_state(parallel.replicate(jax.tree.map(jnp.copy, one.state), four.mesh))
          precise = [rng.integers(0, 256, (16, 40, 40), dtype=np.uint8) for _ in range(2)]
          running = jax.tree.map(host, one.others)
          one.recompute_batchnorm(precise), four.recompute_batchnorm(precise)
          return {
              "devices": len(jax.devices()),
              "param_devices": len(jax.tree.leaves(four.params)[0].devices()),
              "losses": losses, "params": params, "batchnorm": batchnorm, "moved": moved,
              "predictions": float(predictions), "precise": diff(one.others, four.others),
              "recomputed": diff(one.others, running),
          }
        try:  # groups of 8 in a microbatch of 16 over 4 devices would straddle them
            steps(parallel.make_mesh(jax.devices()), 8)
        except ValueError as error:
            refused = str(error)
        print(json.dumps({"plain": compare(None), "ghost": compare(2), "refused": refused}))
        """,
        devices=4,
    )
    assert "4 images per device, not whole BatchNorm groups of 8" in out.pop("refused")
    for run in out.values():
        assert run["devices"] == 4 and run["param_devices"] == 4
        for single, parallel in run["losses"]:
            assert parallel == pytest.approx(single, abs=1e-5)
        assert max(run["params"]) < 1e-5 and max(run["batchnorm"]) < 1e-5
        assert run["predictions"] < 1e-5 and run["precise"] < 1e-5 < 1e-3 < run["recomputed"]
        assert min(run["moved"]) > 1e-3  # every step really updates the parameters


def test_data_parallel_and_per_device_sweeps_reach_the_same_metrics(phantom_shards, tmp_path):
    out = run_python(
        TINY
        + textwrap.dedent(f"""
        import json
        from pathlib import Path
        from jcxr.train.sweep import run_sweep
        shards, work = {str(phantom_shards)!r}, Path({str(tmp_path)!r})
        runs = {{}}
        for name, seeds, changes in [
            ("one_device", (0, 1, 2, 3), dict(parallel__devices=1)),
            ("per_device", (0, 1, 2, 3), dict(parallel__placement="per_device")),
            # learning rate 0: see below
            ("one_device_frozen", (0, 1), dict(parallel__devices=1, optim__learning_rate=0.0)),
            ("data_parallel", (0, 1), dict(parallel__placement="data_parallel",
                                           optim__learning_rate=0.0)),
        ]:
            config = tiny(shards, train__epochs=1, **changes)
            config.sweep.seeds = seeds
            runs[name] = run_sweep(config, work / name).to_json()["cells"]
        print(json.dumps(runs))
        """),
        devices=4,
    )
    reference = out["one_device"]
    assert all(c["devices"] == ["cpu:0"] for c in reference)
    assert all(len(c["devices"]) == 4 for c in out["data_parallel"])
    # per device: each cell alone on one device, the four cells spread over the devices
    assert all(len(c["devices"]) == 1 for c in out["per_device"])
    assert len({c["devices"][0] for c in out["per_device"]}) > 1
    # Data parallel: the step's update is checked against one device's in the step test. Over a
    # whole epoch the two trajectories part by the conditioning of training (Adam turns
    # last-bit differences of a cross-device sum into learning-rate-sized steps; one epoch gave
    # predictions 0.0035 apart on an Intel Xeon and 0.039 on an AMD EPYC). Here, at learning
    # rate 0, the sweep's wiring is compared exactly: the same records in the same order, the
    # BatchNorm running statistics gathered over all four devices' images (the only state that
    # moves), every validation image predicted once, in record order.
    for (a, b), reference_run in zip(
        [*zip(out["one_device_frozen"], out["data_parallel"], strict=True),
         *zip(reference, out["per_device"], strict=True)],
        ["one_device_frozen"] * 2 + ["one_device"] * 4, strict=True,
    ):  # fmt: skip
        run = "data_parallel" if reference_run == "one_device_frozen" else "per_device"
        assert (a["label"], a["resolution"], a["seed"]) == (b["label"], b["resolution"], b["seed"])
        assert a["steps"] == b["steps"] and a["best_epoch"] == b["best_epoch"]
        cell = f"cells/{a['label']}__{a['arch']}__r{a['resolution']}__s{a['seed']}"
        p, q = (np.load(tmp_path / r / cell / "predictions_val.npz") for r in (reference_run, run))
        assert np.array_equal(p["record"], q["record"])
        np.testing.assert_allclose(q["prob"], p["prob"], atol=1e-5)
        assert b["metrics"]["loss"] == pytest.approx(a["metrics"]["loss"], rel=1e-5)
    frozen = [np.load(tmp_path / "one_device_frozen" / f"cells/Mass__resnet_tiny__r32__s{s}"
                      / "predictions_val.npz")["prob"] for s in (0, 1)]  # fmt: skip
    trained = np.load(tmp_path / "one_device/cells/Mass__resnet_tiny__r32__s0/predictions_val.npz")
    assert np.max(np.abs(trained["prob"] - frozen[0])) > 0.01  # the running statistics matter:
    # at rate 0 predictions still differ from the trained run's, and between seeds
    assert np.max(np.abs(frozen[0] - frozen[1])) > 0.01
    # one device or another: the same program on the same numbers, so the same bits
    assert [c["metrics"] for c in out["per_device"]] == [c["metrics"] for c in reference]


# --------------------------------------------------------------------------- device memory


def test_auto_microbatch_is_the_largest_that_fits_and_is_cached(tmp_path):
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from jcxr import models
    from jcxr.train import memory
    from jcxr.train.step import Steps

    model = models.create("resnet_tiny", num_outputs=1, rngs=nnx.Rngs(0))
    steps = Steps(model, optax.adam(1e-3), effective_batch_size=4, microbatch_size=4,
                  augmentation=None, seed=0, dtype=jnp.float32, positive_weight=1.0)  # fmt: skip
    assert memory.candidates(16, 1) == [16, 8, 4, 2, 1] and memory.candidates(24, 4) == [
        24,
        12,
        8,
        4,
    ]
    # Not monotonic on CPU: unrolled microbatches keep their own buffers alive, so 4 x 1 can
    # need more than 1 x 4. The search does not assume it is.
    need = {m: steps.memory_bytes(m, 32) for m in memory.candidates(4, 1)}
    cache = tmp_path / "microbatch.json"
    kw = dict(key="resnet_tiny|test", resolution=32, cache=cache, log=lambda *_: None)
    for budget in sorted(need.values()):  # brute force: the largest size within the budget
        expected = max(m for m, b in need.items() if b <= budget)
        assert memory.choose_microbatch(steps, budget_bytes=budget, **kw) == expected
    budget = min(need.values())
    smallest_fit = max(m for m, b in need.items() if b <= budget)
    entry = json.loads(cache.read_text())
    assert len(entry) == len(set(need.values())) and all("probed" in v for v in entry.values())
    # a second call with the same key reads the cache: nothing is compiled
    steps.memory_bytes = lambda *a: pytest.fail("probed again despite the cache")
    assert memory.choose_microbatch(steps, budget_bytes=budget, **kw) == smallest_fit
    with pytest.raises(MemoryError, match="even a microbatch of 1"):
        steps.memory_bytes = lambda m, r: 10**9
        memory.choose_microbatch(steps, budget_bytes=1, **{**kw, "resolution": 33})


def test_auto_microbatch_in_a_sweep_takes_the_largest_that_fits(phantom_shards, tmp_path):
    """The sweep's own "auto": with a budget between what microbatches of 4 and 8 need, the cell
    trains with 4 (four microbatches per update). ``accumulate="scan"``: the scanned step's need
    falls with the microbatch, as on an accelerator; the unrolled CPU step's does not (see
    docs/benchmarks.md), so "auto" on CPU rarely has a smaller size to choose."""
    out = run_python(
        TINY
        + textwrap.dedent(f"""
        import json, os, types
        from pathlib import Path
        from jcxr.results import Cell
        from jcxr.train.build import build_steps
        from jcxr.train.optim import make_optimizer
        from jcxr.train.sweep import run_sweep
        # BatchNorm's batch fixed whatever the microbatch (groups of 4: what "auto" requires)
        config = tiny({str(phantom_shards)!r}, train__epochs=1, train__microbatch_size=16,
                      train__accumulate="scan", model__batchnorm_group=4)
        steps = build_steps(config, Cell("Mass", 32, "resnet_tiny", 0),
                            types.SimpleNamespace(positive_weight=1.0),
                            make_optimizer(config.optim, 10, 1), log=lambda *_: None)
        need = {{m: steps.memory_bytes(m, 32) for m in (16, 8, 4)}}  # whole groups
        budget = (need[8] + need[4]) // 2
        host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        config.parallel.memory_fraction = budget / host
        config.train.microbatch_size = "auto"
        cells = run_sweep(config, Path({str(tmp_path)!r})).to_json()["cells"]
        print(json.dumps({{"need": need, "cells": cells}}))
        """),
        env={"JCXR_CACHE_DIR": str(tmp_path / "cache")},
    )
    need = {int(m): b for m, b in out["need"].items()}
    assert need[16] > need[8] > need[4]  # scan: monotonic
    (cell,) = out["cells"]
    assert cell["status"] == "done" and cell["microbatch_size"] == 4
    cached = json.loads((tmp_path / "cache" / "microbatch.json").read_text())
    ((key, entry),) = cached.items()
    assert key.startswith("resnet_tiny|linear|float32|remat=False|scan|32px|E16|G4|cpux1")
    # probed largest first, stopping at the first that fits; the figures are the sweep's own
    assert {int(m): b for m, b in entry["probed"].items()} == {m: need[m] for m in (16, 8, 4)}


def test_device_dataset_serves_the_loaders_batches(phantom_shards):
    import jax

    from jcxr.data.device import DeviceDataset
    from jcxr.data.pipeline import Loader

    index = np.load(phantom_shards / "res32" / "index.npz")
    labels = index["labels"][:, 1].astype(np.float32)
    records = np.arange(0, 240, 2)
    for train in (True, False):
        host = Loader(phantom_shards, 32, records, labels, batch_size=16, train=train, seed=4)
        device = DeviceDataset(
            Loader(phantom_shards, 32, records, labels, batch_size=16, train=train, seed=4),
            jax.devices()[0],
        )
        for epoch in range(2):
            pairs = list(zip(host, device, strict=True))
            assert host.state == device.state == {"epoch": epoch + 1, "batch": 0}
            for a, b in pairs:
                assert isinstance(b["pixels"], jax.Array)
                mask = a["mask"]
                np.testing.assert_array_equal(a["pixels"][mask], np.asarray(b["pixels"])[mask])
                for key in ("label", "mask", "record"):
                    np.testing.assert_array_equal(a[key], b[key])
        # a restored position continues with the identical next batch
        host.set_state({"epoch": 3, "batch": 2})
        device.set_state({"epoch": 3, "batch": 2})
        a, b = next(iter(host)), next(iter(device))
        np.testing.assert_array_equal(a["record"], b["record"])
        np.testing.assert_array_equal(a["pixels"][a["mask"]], np.asarray(b["pixels"])[a["mask"]])


def test_device_dataset_training_gives_identical_metrics(phantom_shards, tmp_path, capsys):
    from jcxr.train.sweep import run_sweep

    runs, said = [], []
    for mode in ("off", "on", "auto"):
        config = tiny_config(phantom_shards, train__epochs=1, parallel__device_dataset=mode)
        runs.append(run_sweep(config, tmp_path / mode).to_json()["cells"][0])
        said.append("device dataset:" in capsys.readouterr().out)
    # "on" really keeps the pixels on the device (an ignored option would say nothing);
    # "auto" never does on CPU, where device memory is host memory
    assert said == [False, True, False]
    assert runs[0]["metrics"] == runs[1]["metrics"] and runs[0]["history"] == runs[1]["history"]


def test_device_dataset_auto_rule_is_a_fraction_of_accelerator_memory():
    from types import SimpleNamespace

    from jcxr.data.device import fits

    def device(platform, limit):
        return SimpleNamespace(platform=platform, memory_stats=lambda: {"bytes_limit": limit})

    gpu = device("gpu", 16 * 2**30)
    assert fits(4 * 2**30, gpu, 0.25) and not fits(4 * 2**30 + 1, gpu, 0.25)
    assert not fits(1, device("cpu", 2**40), 0.25)  # nothing to gain on CPU
    assert not fits(1, SimpleNamespace(platform="gpu", memory_stats=lambda: None), 0.25)


# --------------------------------------------------------------------------- multi-process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_together_on_disjoint_data(phantom_shards, tmp_path):
    """jax.distributed on loopback: 2 CPU processes, one device each, one sweep."""
    script = TINY + textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        import jax
        from jcxr._io import atomic_write_text
        from jcxr.data.pipeline import Loader
        from jcxr import results as results_module
        from jcxr.train import cell, sweep

        seen, writes = [], []
        original_iter = Loader.__iter__
        def recording_iter(self):
            for batch in original_iter(self):
                if self.train:
                    seen.extend(batch["record"].tolist())
                yield batch
        Loader.__iter__ = recording_iter
        def recording_write(path, text):
            writes.append(str(path))
            atomic_write_text(path, text)
        cell.atomic_write_text = sweep.atomic_write_text = recording_write
        results_module.atomic_write_text = recording_write

        config = tiny({str(phantom_shards)!r}, train__epochs=1)
        results = sweep.run_sweep(config, Path({str(tmp_path / "work")!r})).to_json()
        print(json.dumps({{"process": jax.process_index(), "processes": jax.process_count(),
                          "devices": len(jax.devices()), "records": seen, "writes": writes,
                          "cells": results["cells"]}}))
    """)
    port = free_port()

    def launch(process_id: int):
        env = {
            **os.environ,
            "JAX_PLATFORMS": "cpu",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": "2",
            "JAX_PROCESS_ID": str(process_id),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, "-c", script]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)  # fmt: skip

    procs = [launch(0), launch(1)]
    outputs = [p.communicate(timeout=900) for p in procs]
    for p, (_, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
    first, second = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    assert (first["process"], second["process"]) == (0, 1)
    assert first["processes"] == 2 and first["devices"] == 2  # one global mesh of 2 devices
    # each process read its own half of every batch: disjoint, together the whole epoch
    a, b = set(first["records"]), set(second["records"])
    assert a and b and not a & b and len(a) == len(b)
    (result,) = first["cells"]
    assert result["status"] == "done" and len(result["devices"]) == 2
    assert len(a | b) == result["steps"] * 16  # effective batch 16 = 8 + 8 per step
    # one set of results, written by process 0 only
    assert second["writes"] == [] and any(w.endswith("results.json") for w in first["writes"])
    saved = json.loads((tmp_path / "work" / "results.json").read_text())
    assert saved["cells"][0]["metrics"] == result["metrics"]
    assert second["cells"][0]["metrics"] == result["metrics"]  # both evaluated every image
