"""Speed paths (issue: CPU speed against PyTorch), tested for behaviour, never for time.

- The training loop's host side (what a GPU would wait on): between logging windows the sweep's
  own loop (device dataset -> step -> progress) makes no implicit transfer and no host sync;
  each window fetches its metrics in one explicit transfer. bench/host_overhead.py times it.
- The command lines' persistent compilation cache.
- Tracing, the part of a cold start no cache keeps: no layer asks a tracer for what only a
  concrete array has.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jcxr import models
from jcxr.data import shards
from jcxr.data.device import DeviceDataset
from jcxr.data.pipeline import Loader
from jcxr.results import Cell
from jcxr.tracking import Tracker
from jcxr.train import cell as cell_module
from jcxr.train.optim import make_optimizer
from jcxr.train.step import Steps

from .helpers import load_module, tiny_config


@pytest.mark.parametrize("log_every", [5, 1000])
def test_the_loop_transfers_nothing_implicitly_and_syncs_once_per_window(
    phantom_shards, tmp_path, monkeypatch, log_every
):
    config = tiny_config(phantom_shards, train__log_every=log_every,
                         train__checkpoint_every=10_000)  # fmt: skip
    labels = shards.read_index(phantom_shards, 32).label("Mass")
    records = np.flatnonzero(~np.isnan(labels))
    loader = DeviceDataset(Loader(phantom_shards, 32, records, labels, 8, train=True),
                           jax.devices()[0])  # fmt: skip
    model = models.create("resnet_tiny", num_outputs=1, rngs=nnx.Rngs(0))
    tx = make_optimizer(config.optim, loader.batches_per_epoch, config.train.epochs)
    steps = Steps(model, tx, effective_batch_size=8, microbatch_size=8, augmentation=None,
                  seed=0, dtype=np.float32, positive_weight=1.0)  # fmt: skip
    tracker = Tracker(config, tmp_path, progress=False)
    syncs = []
    real_get = jax.device_get
    monkeypatch.setattr(cell_module.jax, "device_get",
                        lambda tree: syncs.append(1) or real_get(tree))  # fmt: skip
    meta = {"step": 0, "epoch_loss": [0.0, 0]}
    cell = Cell("Mass", 32, "resnet_tiny", 0)
    with jax.transfer_guard("disallow"):  # explicit device_put / device_get only
        cell_module._train_epoch(config, cell, steps, loader, meta, None, tracker)
    per_epoch = loader.batches_per_epoch
    assert meta["step"] == per_epoch > 10
    assert len(syncs) == -(-per_epoch // log_every)  # one per window, the last one partial
    assert meta["epoch_loss"][1] == per_epoch and np.isfinite(meta["epoch_loss"][0])


def test_a_python_step_number_is_sent_once_then_carried_on_the_device(phantom_shards):
    """Steps.step takes the step number as an int; consecutive steps reuse the counter the
    last step returned on the device, and any other number (a resume) is sent explicitly."""
    model = models.create("resnet_tiny", num_outputs=1, rngs=nnx.Rngs(0))
    steps = Steps(model, optax.sgd(0.0), effective_batch_size=4, microbatch_size=4,
                  augmentation=None, seed=0, dtype=np.float32, positive_weight=1.0)  # fmt: skip
    pixels = jax.device_put(np.zeros((4, 32, 32), np.uint8))
    labels = jax.device_put(np.array([0.0, 1.0, 0.0, 1.0], np.float32))
    steps.step(pixels, labels, 7)
    with jax.transfer_guard("disallow"):
        steps.step(pixels, labels, 8)  # the device counter: nothing sent
    assert int(steps._step(9)) == 9 and int(steps._step(3)) == 3  # a resume: sent explicitly


def test_the_command_lines_keep_compiled_programs_in_a_persistent_cache(tmp_path, monkeypatch):
    from jcxr import _cli

    before = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        monkeypatch.delenv(_cli.CACHE_ENV, raising=False)
        assert _cli.use_compilation_cache() == str(tmp_path / "xdg" / "jcxr" / "jax")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xdg" / "jcxr" / "jax")
        monkeypatch.setenv(_cli.CACHE_ENV, str(tmp_path / "mine"))  # a folder set by JAX wins
        assert _cli.use_compilation_cache() == str(tmp_path / "xdg" / "jcxr" / "jax")
        jax.config.update("jax_compilation_cache_dir", None)
        assert _cli.use_compilation_cache() == str(tmp_path / "mine")
        jax.config.update("jax_compilation_cache_dir", None)
        monkeypatch.setenv(_cli.CACHE_ENV, "off")
        assert _cli.use_compilation_cache() is None and not jax.config.jax_compilation_cache_dir
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_the_profile_puts_a_compiled_steps_convolutions_and_matmuls_in_their_categories():
    """bench/profile_step.py reads the compiled HLO by pattern; this jaxlib's printing must
    still give every convolution direction and the matmul their category."""
    from pathlib import Path

    profile_step = load_module(Path(__file__).parents[1] / "bench" / "profile_step.py")

    DIMS = ("NHWC", "HWIO", "NHWC")

    def loss(kernels, dense, x):
        for kernel in kernels:  # XLA's own convolution: no jcxr path, as in a GPU step
            x = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=DIMS)
            x = jax.nn.relu(x)
        return jnp.sum(x.reshape(x.shape[0], -1) @ dense)

    rng = np.random.default_rng(0)
    kernels = [jnp.asarray(rng.normal(size=(3, 3, c, 8)), jnp.float32) for c in (3, 8)]
    dense, x = jnp.ones((8 * 8 * 8, 2)), jnp.ones((4, 8, 8, 3))
    hlo = jax.jit(jax.grad(loss, (0, 1))).lower(kernels, dense, x).compile().as_text()
    found = set(profile_step.hlo_categories(hlo, batch=4).values())
    assert {"conv forward", "conv grad input", "conv grad weights", "matmul"} <= found


def test_tracing_a_cell_never_builds_a_tracer_error_message(monkeypatch):
    """Asking a tracer for ``.sharding`` (as ``variable[...] = value`` does in flax to check for
    a full replace) makes JAX build an error message by walking everything traced so far: 242
    walks (two per BatchNorm) in DenseNet121's train step, 2.4 of its 6.2 s of tracing
    (docs/benchmarks.md). Every program of a cell, and BatchNorm's grouped and padded paths,
    must trace without one."""
    from jax._src.interpreters import partial_eval

    from jcxr.models import batchnorm

    walks = []
    real = partial_eval.DynamicJaxprTracer._origin_msg
    monkeypatch.setattr(partial_eval.DynamicJaxprTracer, "_origin_msg",
                        lambda tracer: walks.append(1) or real(tracer))  # fmt: skip
    model = models.create("resnet_tiny", num_outputs=1, rngs=nnx.Rngs(0))
    steps = Steps(model, optax.adam(1e-3), effective_batch_size=8, microbatch_size=4,
                  augmentation=None, seed=0, dtype=np.float32, positive_weight=1.0)  # fmt: skip
    flat = jax.ShapeDtypeStruct((8, 32, 32), jnp.uint8)
    steps.train_step.trace(*steps.train_arguments(4, 32))
    steps.eval_step.trace(steps.params, steps.others, flat)
    steps.moments_step.trace(steps.params, steps.others, flat)

    norm = batchnorm.BatchNorm(3)
    norm.group = 2
    x = jnp.ones((4, 5, 5, 3))

    @nnx.jit
    def grouped(norm, x, weights):
        with batchnorm.counted_images(weights):
            return norm(x)

    grouped(norm, x, jnp.array([1.0, 0.0, 1.0, 1.0]))
    norm.group = None
    grouped(norm, x, jnp.ones(4))
    assert walks == []


def test_the_compile_profile_reads_phases_and_fusions_as_perf_and_this_jaxlib_print_them():
    """bench/compile_profile.py reads ``perf report``'s inclusive column by function name and
    counts fusions in the compiled HLO by pattern: a convolution must count as a YNNPACK fusion,
    the ReLU after it as a loop fusion, and a phase absent from the report as 0."""
    from pathlib import Path

    compile_profile = load_module(Path(__file__).parents[1] / "bench" / "compile_profile.py")

    report = """# Overhead  Self  Symbol
    24.61%     0.06%  [.] xla::cpu::IrCompiler::RunIrPasses
    16.47%     0.01%  [.] xla::cpu::IrCompiler::EmitMachineCode
    21.24%     0.00%  [.] xla::cpu::FusionCompiler::Compile
     6.52%     4.93%  [.] xla::cpu::IrCompiler::RunIrPassesSomethingElse
"""
    shares = compile_profile.phase_shares(report)
    assert shares == pytest.approx(
        {
            "HLO passes (fusion, layout, scheduling, ...)": 0.0,
            "fusion emitters (HLO -> MLIR -> LLVM IR)": 0.2124,
            "LLVM IR optimisation": 0.2461,
            "LLVM machine code": 0.1647,
        }
    )

    def layer(x, kernel):
        y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip
        return jnp.maximum(jnp.sin(y), 0.0)

    x, kernel = jnp.ones((4, 16, 16, 16)), jnp.ones((3, 3, 16, 32))  # small ones stay XLA's own
    hlo = jax.jit(layer).lower(x, kernel).compile().as_text()
    fusions = compile_profile.count_fusions(hlo)
    assert fusions["ynnpack"] >= 1 and fusions["loop"] >= 1
