"""jcxr.train: gradient accumulation, recipes, resume after SIGKILL, the sweep end to end."""

import csv
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special

from jcxr import models
from jcxr.data import nih, phantom, shards
from jcxr.train import optim
from jcxr.train.config import defaults, validate
from jcxr.train.metrics import binary_metrics
from jcxr.train.step import Steps
from jcxr.train.sweep import run_sweep

from .helpers import load_module, tiny_config

REPO = Path(__file__).parent.parent


# --------------------------------------------------------------------------- the step


def make_steps(microbatch_size, tx, freeze_batchnorm=True, accumulate="auto"):
    """resnet_tiny steps over effective batches of 32 images."""
    model = models.create("resnet_tiny", num_outputs=1, rngs=__import__("flax").nnx.Rngs(5))
    return Steps(
        model,
        tx,
        effective_batch_size=32,
        microbatch_size=microbatch_size,
        accumulate=accumulate,
        augmentation=None,
        seed=0,
        dtype=jnp.float32,
        positive_weight=2.0,
        freeze_batchnorm=freeze_batchnorm,
    )


@pytest.mark.parametrize("accumulate", ["unroll", "scan"])  # scan: the default off CPU
def test_accumulated_microbatches_give_the_same_update_as_one_batch(accumulate):
    rng = np.random.default_rng(0)
    pixels = jnp.asarray(rng.integers(0, 256, (32, 32, 32)), jnp.uint8)
    labels = jnp.asarray(rng.integers(0, 2, 32), jnp.float32)
    whole = make_steps(32, optax.sgd(0.1))
    split = make_steps(8, optax.sgd(0.1), accumulate=accumulate)
    assert split.unroll == (accumulate == "unroll")
    before = jax.tree.map(np.asarray, whole.params)
    loss_whole = whole.step(pixels, labels, 0)["loss"]
    loss_split = split.step(pixels, labels, 0)["loss"]
    assert float(loss_whole) == pytest.approx(float(loss_split), rel=1e-5)
    moved = 0.0
    for a, b, p0 in zip(
        jax.tree.leaves(whole.params),
        jax.tree.leaves(split.params),
        jax.tree.leaves(before),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
        moved = max(moved, float(np.abs(np.asarray(a) - p0).max()))
    assert moved > 1e-3  # the update is real, not a no-op


def test_one_compile_per_step_kind_over_many_steps_and_evaluations():
    """jcxr's real steps: the step index and the batches are traced, never static, so a run
    compiles one train step and one eval step however many updates it makes."""
    steps = make_steps(16, optax.adam(1e-3), freeze_batchnorm=False)
    rng = np.random.default_rng(1)
    for i in range(4):
        pixels = rng.integers(0, 256, (32, 32, 32), dtype=np.uint8)
        steps.step(pixels, (rng.random(32) < 0.5).astype(np.float32), i)
        steps.predict(rng.integers(0, 256, (24, 32, 32), dtype=np.uint8))
    assert steps.train_step._cache_size() == 1 and steps.eval_step._cache_size() == 1


def test_train_arguments_lower_the_program_training_runs():
    """The ahead-of-time arguments (memory probes, profiles) are placed as ``step`` places its
    own, the step index included, so they lower to the program training compiles, not a
    sibling with its own cache entry (as a host ``np.int32`` step index gave)."""
    steps = make_steps(16, optax.sgd(0.1))
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (2, 16, 32, 32), dtype=np.uint8)
    labels = np.ones((2, 16), np.float32)
    steps.step(pixels.reshape(32, 32, 32), labels.reshape(32), 0)
    batch = steps._put(pixels, axis=1), steps._put(labels, axis=1)
    trained = (steps.params, steps.others, steps.opt_state, *batch, steps._step(1), None)
    ahead = steps.train_arguments(16, 32)
    assert ahead[5].sharding == trained[5].sharding
    lowered = steps.train_step.lower(*ahead).as_text()
    assert lowered == steps.train_step.lower(*trained).as_text()


def test_step_count_and_schedule_advance_per_effective_batch():
    config = defaults()
    config.optim.recipe = "one_cycle"
    config.optim.freeze_epochs = 1
    tx = optim.make_optimizer(config.optim, steps_per_epoch=3, epochs=3)
    steps = make_steps(8, tx, freeze_batchnorm=False)
    pixels = jnp.zeros((32, 32, 32), jnp.uint8)
    labels = jnp.zeros(32, jnp.float32)
    body_before = np.asarray(steps.params["layer1"]["layers"][0]["conv1"]["kernel"][...])
    head_before = np.asarray(steps.params["head"]["dense"]["kernel"][...])
    for i in range(3):  # the frozen epoch: 3 optimiser updates, 12 microbatches
        steps.step(pixels, labels, i)
    head_state = steps.opt_state.inner_states["head"].inner_state
    assert int(head_state.count) == 3  # one count per effective batch, not per microbatch
    # inject_hyperparams reports the rate of the latest update (step index 2).
    warmup = optax.cosine_onecycle_schedule(3, config.optim.frozen_learning_rate)
    rates = optim.current_learning_rates(steps.opt_state)
    assert float(rates["lr_head"]) == pytest.approx(float(warmup(2)), rel=1e-6)
    assert float(rates["lr_body"]) == 0.0
    body_after = np.asarray(steps.params["layer1"]["layers"][0]["conv1"]["kernel"][...])
    np.testing.assert_array_equal(body_after, body_before)  # frozen
    assert not np.array_equal(np.asarray(steps.params["head"]["dense"]["kernel"][...]), head_before)
    steps.step(pixels, labels, 3)  # the first unfrozen update
    rates = optim.current_learning_rates(steps.opt_state)
    after = optax.cosine_onecycle_schedule(6, config.optim.body_learning_rate)
    assert float(rates["lr_body"]) == pytest.approx(float(after(0)), rel=1e-6)
    body_now = np.asarray(steps.params["layer1"]["layers"][0]["conv1"]["kernel"][...])
    assert not np.array_equal(body_now, body_before)


def test_plateau_halves_after_patience_epochs():
    plateau = optim.Plateau(patience=2, factor=0.5)
    assert [plateau.update(v) for v in (1.0, 0.9, 0.95, 0.93, 0.8, 0.85, 0.9)] == [
        False, False, False, True, False, False, True]  # fmt: skip
    tx = optax.inject_hyperparams(optax.rmsprop)(learning_rate=1e-3)
    state = optim.scale_learning_rate(tx.init({"w": jnp.zeros(2)}), 0.5)
    assert float(optim.current_learning_rates(state)["lr"]) == pytest.approx(5e-4)


def test_binary_metrics_by_hand():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.6, 0.7, 0.4, 0.9, 0.3])
    m = binary_metrics(y, special.logit(p), loss=0.5)  # scores are logits
    # At probability 0.5 (logit 0): TP 2 (0.7, 0.9), FN 1, FP 1 (0.6), TN 2.
    assert (m["sensitivity"], m["specificity"], m["accuracy"]) == (2 / 3, 2 / 3, 4 / 6)
    assert m["precision"] == 2 / 3 and m["f1"] == pytest.approx(2 / 3)
    assert m["auc"] == pytest.approx(8 / 9)  # 8 of the 9 positive-negative pairs are ordered
    # DeLong by hand: V10 = (1, 2/3, 1), V01 = (1, 2/3, 1) -> var = (1/27)/3 + (1/27)/3.
    assert m["auc_se"] == pytest.approx(np.sqrt(2 / 81))
    # Youden: >= 0.7 and >= 0.4 both give J = 2/3 (the best); reported as a probability
    assert min(abs(m["youden_threshold"] - t) for t in (0.7, 0.4)) < 1e-12
    assert m["sensitivity_youden"] + m["specificity_youden"] - 1 == pytest.approx(2 / 3)


def test_mean_probability_logit_is_the_logit_of_the_mean_probability():
    """Against float64's plain formula where it is exact enough, and against the tail's closed
    form where every probability is 1.0: logit(mean p) -> -log(mean exp(-z)) as z grows."""
    from jcxr.predictions import mean_probability_logit

    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (50, 4))
    expected = special.logit(np.mean(special.expit(z), axis=1))
    np.testing.assert_allclose(mean_probability_logit(z, axis=1), expected, rtol=1e-10)
    np.testing.assert_allclose(mean_probability_logit(-z, axis=1), -expected, rtol=1e-10)
    tail = 40 + rng.random((50, 3)) * 20  # logits 40-60: their probabilities all round to 1.0
    assert np.all(special.expit(tail) == 1.0)
    closed = -np.log(np.mean(np.exp(-tail), axis=1))  # exact to O(exp(-40))
    np.testing.assert_allclose(mean_probability_logit(tail, axis=1), closed, rtol=1e-12)
    assert np.unique(mean_probability_logit(tail, axis=1)).size == 50  # still ranked
    one = z[:, :1].astype(np.float32)  # one view: the logit itself, bit for bit
    assert np.array_equal(mean_probability_logit(one, axis=1), z[:, 0].astype(np.float32))


def test_predictions_written_before_scores_rank_by_the_logit_of_their_probability(tmp_path):
    from jcxr.predictions import scores_of

    prob = np.array([0.2, 0.9, 0.5])
    np.savez(tmp_path / "old.npz", record=np.arange(3), label=np.array([0, 1, 1]), prob=prob)
    with np.load(tmp_path / "old.npz") as saved:
        np.testing.assert_allclose(scores_of(saved), special.logit(prob), rtol=1e-12)
    np.savez(tmp_path / "new.npz", score=np.array([45.0, 50.0]), prob=np.array([1.0, 1.0]))
    with np.load(tmp_path / "new.npz") as saved:
        assert scores_of(saved).tolist() == [45.0, 50.0]


# --------------------------------------------------------------------------- configs


def load_config(name, arg=None):
    module = load_module(REPO / "configs" / f"{name}.py")
    return module.get_config(arg) if arg else module.get_config()


@pytest.mark.parametrize("name,arg", [("demo", None), ("sweep", None), ("sabottke2020", "A"),
                                      ("sabottke2020", "C"), ("sabottke2020", "H"),
                                      ("chizari2021", None),
                                      ("cardenas2020", None)])  # fmt: skip
def test_study_configs_parse_and_take_a_first_step(name, arg):
    config = load_config(name, arg)
    validate(config)
    arch = config.sweep.archs[0]
    tx = optim.make_optimizer(config.optim, steps_per_epoch=10, epochs=config.train.epochs)
    model = models.create(arch, num_outputs=1, head=config.model.head,
                          dropout=config.model.dropout)  # fmt: skip
    steps = Steps(model, tx, effective_batch_size=4, microbatch_size=2, augmentation=None,
                  seed=0, dtype=jnp.float32, positive_weight=1.0)  # fmt: skip
    metrics = steps.step(jnp.zeros((4, 32, 32), jnp.uint8), jnp.array([0.0, 1.0, 0.0, 1.0]), 0)
    assert np.isfinite(float(metrics["loss"]))


def test_sweep_config_keeps_the_effective_batch_constant_across_resolutions():
    config = load_config("sweep")
    assert config.sweep.resolutions == (32, 64, 128, 224, 256, 320, 448, 512, 600)
    assert len(config.sweep.labels) == 8 and config.sweep.archs == ("resnet34",)
    assert config.train.effective_batch_size == 32 and config.train.epochs == 3


def test_unknown_and_bad_config_fields_fail_clearly(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "jcxr.train", "--config",  # noqa: E731
                                     str(REPO / "configs" / "demo.py"), *a],
                                    capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    typo = run("--config.train.epochz=3")
    assert typo.returncode != 0
    assert "epochz" in typo.stderr and "train.epochs" in typo.stderr  # lists the valid fields
    bad = run("--config.optim.recipe=sgd", f"--workdir={tmp_path}")
    assert bad.returncode != 0 and "config.optim.recipe = 'sgd'" in bad.stderr
    assert "--config" in run("--help").stdout


def test_sweep_lists_are_checked_before_anything_runs(phantom_shards, tmp_path):
    from jcxr.data.table import DataError

    bad = {
        "resolutions": ((32, 64, 64), r"config.sweep.resolutions = \(32, 64, 64\) lists 64 more"),
        "labels": (("Mass", "Mass"), r"lists 'Mass' more than once"),
        "archs": (("resnet_tiny", "resnet35"), r"config.sweep.archs = 'resnet35'; expected one of"),
        "only": (("resnet_tiny-32",), r"config.sweep.only has 'resnet_tiny-32'; expected 'ARCH:"),
    }
    for field, (value, message) in bad.items():
        config = tiny_config(phantom_shards)
        config.sweep[field] = value
        with pytest.raises(ValueError, match=message):
            run_sweep(config, tmp_path / field)
        assert not (tmp_path / field).exists()  # refused before the workdir is made
    # a label the shards do not have stops the sweep before its first cell trains
    config = tiny_config(phantom_shards, sweep__labels=("Mass", "Nodules"))
    with pytest.raises(DataError, match="unknown label 'Nodules'"):
        run_sweep(config, tmp_path / "label")
    assert not (tmp_path / "label" / "cells").exists()


def test_shards_of_another_source_are_refused(phantom_shards, tmp_path):
    from jcxr.data.table import DataError

    config = tiny_config(phantom_shards, data__source="chexpert")
    with pytest.raises(DataError, match="hold 'nih' images, but the run's source is 'chexpert'"):
        run_sweep(config, tmp_path)
    assert not (tmp_path / "cells").exists()


def test_cardenas_config_without_shards_says_how_to_prepare_padchest(tmp_path):
    config = load_config("cardenas2020")
    config.logging.wandb = "disabled"
    with pytest.raises(ValueError, match=r"python -m jcxr\.data prepare --source padchest"):
        run_sweep(config, tmp_path)


def test_missing_shards_say_how_to_prepare(tmp_path):
    config = tiny_config(tmp_path / "nowhere")
    config.data.source = "nih"
    with pytest.raises(ValueError, match=r"python -m jcxr\.data prepare --source nih"):
        run_sweep(config, tmp_path / "work")


def test_own_phantom_shards_are_remade_when_the_phantoms_change(tmp_path, monkeypatch):
    from jcxr.train.inputs import shards_for

    config = tiny_config("", data__prepare_if_missing=True, data__phantom_images=12)
    out = shards_for(config, tmp_path)
    assert out == tmp_path / "shards"
    shard_32 = out / shards.read_manifest(out)["shards"]["32"][0]["file"]
    first = shard_32.stat().st_mtime_ns
    made = json.loads(shards.read_manifest(out)["phantoms"])
    assert made == {"num_images": 12, "seed": 0, "native": 512, "version": phantom.VERSION}
    config.sweep.resolutions = (32, 40)  # the same phantoms: only 40 px is added
    shards_for(config, tmp_path)
    assert shards.read_manifest(out)["resolutions"] == [32, 40]
    assert shard_32.stat().st_mtime_ns == first  # not rewritten
    config.sweep.resolutions = (40,)  # nothing to do, and 32 px stays listed
    shards_for(config, tmp_path)
    assert shards.read_manifest(out)["resolutions"] == [32, 40]

    monkeypatch.setattr(phantom, "VERSION", phantom.VERSION + 1)  # the drawing changed
    shard_40 = out / shards.read_manifest(out)["shards"]["40"][0]["file"]
    stale = shard_40.stat().st_mtime_ns
    shards_for(config, tmp_path)
    manifest = shards.read_manifest(out)
    assert json.loads(manifest["phantoms"])["version"] == phantom.VERSION
    assert manifest["resolutions"] == [40] and not (out / "res32").exists()
    assert shard_40.stat().st_mtime_ns != stale  # remade (from the redrawn phantoms)

    # Shards named by config.data.shards are used as they are, whatever made them.
    monkeypatch.setattr(phantom, "VERSION", phantom.VERSION + 1)
    config.data.shards = str(out)
    remade = shard_40.stat().st_mtime_ns
    assert shards_for(config, tmp_path) == out
    assert shard_40.stat().st_mtime_ns == remade


def test_foreign_shards_in_the_workdir_are_never_removed(tmp_path):
    from jcxr.train.inputs import shards_for

    other = tmp_path / "other"
    phantom.generate(other, 8, seed=5, workers=1)
    shards.prepare(nih.read_metadata(other), other, tmp_path / "shards", [32], workers=1,
                   progress=False)  # fmt: skip
    config = tiny_config("", data__prepare_if_missing=True, data__phantom_images=12)
    config.sweep.resolutions = (40,)
    with pytest.raises(ValueError, match="holds shards this sweep did not make"):
        shards_for(config, tmp_path)
    assert shards.read_manifest(tmp_path / "shards")["images"] == 8


# --------------------------------------------------------------------------- runs


def test_nan_loss_fails_the_cell_with_a_diagnostic_and_the_sweep_continues(
    phantom_shards, tmp_path
):
    config = tiny_config(phantom_shards, optim__learning_rate=float("nan"), train__epochs=1)
    config.sweep.resolutions = (32, 48)
    config.sweep.only = ("resnet_tiny:32",)
    config.sweep.archs = ("resnet_tiny", "resnet18")
    config.optim.recipe = "adam"
    results = run_sweep(config, tmp_path).to_json()
    statuses = {(c["arch"], c["resolution"]): c["status"] for c in results["cells"]}
    assert statuses == {("resnet_tiny", 32): "failed", ("resnet18", 32): "failed",
                        ("resnet18", 48): "failed"}  # fmt: skip
    failure = json.loads(
        (tmp_path / "cells" / "Mass__resnet_tiny__r32__s0" / "failure.json").read_text()
    )
    assert "non-finite training loss" in failure["reason"] and failure["step"] >= 1


def test_epoch_train_loss_is_the_mean_of_every_step_loss(phantom_shards, tmp_path, monkeypatch):
    losses, original = [], Steps.step

    def step(self, pixels, labels, step, views=None):
        out = original(self, pixels, labels, step, views)
        losses.append(float(out["loss"]))
        return out

    monkeypatch.setattr(Steps, "step", step)
    # Windows of 2 steps, flushed early at every 3rd-step checkpoint: uneven on purpose.
    config = tiny_config(phantom_shards, train__log_every=2, train__checkpoint_every=3)
    history = run_sweep(config, tmp_path).to_json()["cells"][0]["history"]
    per_epoch = np.array(losses).reshape(config.train.epochs, -1).mean(axis=1)
    np.testing.assert_allclose([h["train_loss"] for h in history], per_epoch, rtol=1e-12)


def run_cli(workdir, shard_dir, *extra):
    args = [f"--config.data.shards={shard_dir}", "--config.sweep.labels=Mass",
            "--config.sweep.resolutions=32", "--config.sweep.archs=resnet_tiny",
            "--config.train.epochs=2", "--config.train.effective_batch_size=16",
            "--config.train.microbatch_size=8", "--config.train.checkpoint_every=3",
            "--config.train.max_rotation=5.0", "--config.train.max_contrast=0.1",  # all kinds
            "--config.logging.wandb=disabled", "--config.logging.progress=False",
            f"--workdir={workdir}", *extra]  # fmt: skip
    return [
        sys.executable,
        "-m",
        "jcxr.train",
        "--config",
        str(REPO / "configs" / "demo.py"),
        *args,
    ]


def killed_run(workdir, shard_dir, kill_when: str):
    """The CLI run killed with SIGKILL right after the checkpoint save for which ``kill_when``
    (an expression of ``name``, "latest" or "best", and ``saves``, the count so far) holds."""
    killer = textwrap.dedent(f"""
        import os, signal, sys
        from jcxr.train.checkpoints import Checkpoints
        original, saves = Checkpoints.save, 0
        def save(self, step, steps, meta):
            global saves
            original(self, step, steps, meta)
            saves += 1
            name = self.manager.directory.name
            if {kill_when}:
                os.kill(os.getpid(), signal.SIGKILL)
        Checkpoints.save = save
        sys.argv = {run_cli(workdir, shard_dir)[2:]!r}
        from jcxr.train.__main__ import run
        run()
    """)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-c", killer], env=env, capture_output=True)


def test_sigkill_then_rerun_resumes_and_ends_with_identical_metrics(phantom_shards, tmp_path):
    """Killed mid-epoch, and killed at the epoch end between the ``best`` and the ``latest``
    save (a ``best`` step newer than ``latest``): each rerun resumes, never re-saves a step,
    and ends exactly where an uninterrupted run does."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    straight = subprocess.run(run_cli(tmp_path / "straight", phantom_shards), env=env,
                              capture_output=True, text=True)  # fmt: skip
    assert straight.returncode == 0, straight.stderr[-2000:]
    a = json.loads((tmp_path / "straight" / "results.json").read_text())["cells"][0]
    cell = "cells/Mass__resnet_tiny__r32__s0"
    moments = {
        "mid_epoch": "saves == 3",  # after the third mid-epoch checkpoint, in epoch 1
        "best_before_latest": "name == 'best'",  # epoch 1's end: best saved, latest not yet
    }
    for moment, kill_when in moments.items():
        workdir = tmp_path / moment
        assert killed_run(workdir, phantom_shards, kill_when).returncode == -9, moment
        assert not (workdir / cell / "result.json").exists()
        best_steps = sorted(int(p.name) for p in (workdir / cell / "best").glob("[0-9]*"))
        latest_steps = sorted(int(p.name) for p in (workdir / cell / "latest").glob("[0-9]*"))
        if moment == "best_before_latest":
            assert best_steps and (not latest_steps or best_steps[-1] > latest_steps[-1])
        # a step a kill left half-written
        orphan = workdir / cell / "latest" / "99.orbax-checkpoint-tmp-1234"
        orphan.mkdir(parents=True)
        resumed = subprocess.run(run_cli(workdir, phantom_shards), env=env,
                                 capture_output=True, text=True)  # fmt: skip
        assert resumed.returncode == 0, (moment, resumed.stderr[-3000:])
        assert not orphan.exists() and "99.orbax-checkpoint-tmp-1234" in resumed.stdout
        if latest_steps:  # it resumed: only the remaining steps were trained
            assert f"resuming at step {latest_steps[-1]} " in resumed.stdout, moment
        if moment == "best_before_latest":
            assert f"removing step {best_steps[-1]}" in resumed.stdout
        b = json.loads((workdir / "results.json").read_text())["cells"][0]
        assert a["history"] == b["history"] and a["metrics"] == b["metrics"], moment
        assert a["steps"] == b["steps"] and a["best_epoch"] == b["best_epoch"]
    again = subprocess.run(run_cli(workdir, phantom_shards), env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0  # a finished sweep is skipped, not retrained
    assert "resuming" not in again.stdout and "epoch 1:" not in again.stdout
    assert json.loads((workdir / "results.json").read_text())["cells"][0] == b


def test_a_repeated_config_override_replaces_the_earlier_one():
    from jcxr._cli import last_override_wins

    argv = ["jcxr", "--config", "c.py", "--config.sweep.resolutions=32", "--workdir=w",
            "--config.sweep.resolutions=32,48", "--config.train.epochs=2"]  # fmt: skip
    assert last_override_wins(argv) == ["jcxr", "--config", "c.py", "--workdir=w",
                                        "--config.sweep.resolutions=32,48",
                                        "--config.train.epochs=2"]  # fmt: skip


def test_a_rerun_with_another_config_stops_naming_the_changes(phantom_shards, tmp_path):
    from jcxr.train.fingerprint import StaleWorkdir

    config = tiny_config(phantom_shards, train__epochs=1)
    config.sweep.resolutions = (32, 48)
    first = run_sweep(config, tmp_path)
    # what cannot change a result may change freely: logging, placement, more cells
    config.logging.progress, config.train.log_every = True, 5
    config.sweep.labels = ("Mass", "Nodule")
    again = run_sweep(config, tmp_path)
    assert [c.to_json() for c in again.cells[:2]] == [c.to_json() for c in first.cells]
    config.sweep.labels = ("Mass",)
    # a workdir made before a config field existed: the field at its default is no change ...
    for path in (tmp_path / "cells").glob("Mass__*/fingerprint.json"):
        recorded = json.loads(path.read_text())
        del recorded["config.train.accumulate"]
        path.write_text(json.dumps(recorded))
    assert [c.to_json() for c in run_sweep(config, tmp_path).cells] == [
        c.to_json() for c in first.cells
    ]
    config.train.accumulate = "scan"  # ... any other value is (the rerun recorded the field)
    with pytest.raises(StaleWorkdir, match=re.escape("config.train.accumulate: 'auto' -> 'scan'")):
        run_sweep(config, tmp_path)
    config.train.accumulate = "auto"
    # a field whose default changed what jcxr does is compared with what it did before: cells
    # made before precise BatchNorm statistics existed used the running averages (0)
    for path in (tmp_path / "cells").glob("Mass__*/fingerprint.json"):
        recorded = json.loads(path.read_text())
        del recorded["config.train.precise_bn_images"]
        path.write_text(json.dumps(recorded))
    with pytest.raises(StaleWorkdir, match=re.escape("config.train.precise_bn_images: 0 -> 1024")):
        run_sweep(config, tmp_path)
    config.train.precise_bn_images = 0
    run_sweep(config, tmp_path)  # accepted, and recorded
    config.train.precise_bn_images = 1024
    with pytest.raises(StaleWorkdir, match=re.escape("config.train.precise_bn_images: 0 -> 1024")):
        run_sweep(config, tmp_path)
    config.train.precise_bn_images = 0
    config.train.epochs, config.optim.learning_rate = 2, 0.1
    with pytest.raises(StaleWorkdir) as stale:
        run_sweep(config, tmp_path)
    message = str(stale.value)
    assert "2 of 2 cells" in message and "--fresh" in message
    assert "config.train.epochs: 1 -> 2" in message
    assert "config.optim.learning_rate: 0.0005 -> 0.1" in message
    assert "logging" not in message and "log_every" not in message
    # from the command line: a message, no traceback; --fresh trains them again
    cli = run_cli(tmp_path, phantom_shards, "--config.sweep.resolutions=32,48",
                  "--config.train.epochs=2", "--config.optim.learning_rate=0.1")  # fmt: skip
    refused = subprocess.run(cli, capture_output=True, text=True)
    assert refused.returncode != 0 and "config.train.epochs: 1 -> 2" in refused.stderr
    assert "Traceback" not in refused.stderr
    fresh = subprocess.run([*cli, "--fresh"], capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    redone = json.loads((tmp_path / "results.json").read_text())["cells"]
    assert [len(c["history"]) for c in redone] == [2, 2]


def test_demo_sweep_end_to_end_with_wandb_offline_and_report(phantom_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # the suite runs with W&B disabled
    config = load_config("demo")
    config.data.shards = str(phantom_shards)
    config.sweep.resolutions = (32, 48)
    config.sweep.labels = ("Mass", "Nodule")
    config.train.epochs = 1
    config.logging.wandb = "offline"
    config.logging.progress = False
    results = run_sweep(config, tmp_path).to_json()
    assert [c["status"] for c in results["cells"]] == ["done"] * 4
    comp = results["comparisons"]["Mass"]
    assert comp["resolutions"] == [32, 48] and len(comp["p"]) == 2
    assert set(comp) >= {"resolutions", "auc", "se", "p", "p_adjusted", "best_resolution"}
    cell = results["cells"][0]
    assert set(cell) >= {"label", "resolution", "arch", "seed", "status", "best_epoch", "metrics"}
    assert 0 < cell["metrics"]["auc_se"] < 0.5
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("label,resolution,arch,seed")
    html = (tmp_path / "report.html").read_text()
    figures = sorted((tmp_path / "figures").glob("*.png"))
    # AUC vs resolution, ratio; per label: p-values, ROC, what the network sees, training
    assert len(figures) == 2 + 4 * 2
    assert all(f.with_suffix(".svg").is_file() for f in figures)
    check_report(html, config)
    screenshot_if_a_browser_is_here(tmp_path / "report.html")
    runs = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 5  # 4 cells + the sweep summary, ready for `wandb sync`
    # wandb 0.31 keeps an offline run's records in this binary log; "best_epoch" and "auc_se"
    # are written only by the cell's summary update.
    logs = [run.read_bytes() for run in runs]
    assert sum(b"best_epoch" in log and b"auc_se" in log for log in logs) == 4
    assert sum(b"tiny" in log or b"demo" in log for log in logs) == 5  # group = sweep name
    # the summary run carries each finding's answer, its margin and the unit of analysis
    summary_log = next(log for log in logs if b"sufficient_resolution" in log)
    assert b"Nodule/noninferiority_margin" in summary_log and b"per patient" in summary_log
    # where the networks look (the demo localises): the figure and each finding's grid as panels
    assert all(name in summary_log for name in (b"localisation", b"grid_Mass__resnet_tiny",
                                                b"grid_Nodule__resnet_tiny"))  # fmt: skip
    assert (tmp_path / "comparisons" / "Mass__resnet_tiny__s0.txt").is_file()
    # each resolution's AUC in the comparison is its own cell's test AUC, and the comparison is
    # delong() on the saved predictions (a sweep that compared one cell's scores at every
    # resolution would give equal AUCs and p = 1)
    from jcxr.stats import delong

    clustered = 0
    for label, comp in results["comparisons"].items():
        own = {c["resolution"]: c["splits"]["test"]["auc"] for c in results["cells"]
               if c["label"] == label}  # fmt: skip
        assert comp["auc"] == pytest.approx([own[r] for r in comp["resolutions"]], abs=1e-12)
        saved = [np.load(tmp_path / "cells" / f"{label}__resnet_tiny__r{r}__s0"
                         / "predictions_test.npz") for r in comp["resolutions"]]  # fmt: skip
        for p in saved:
            np.testing.assert_array_equal(p["record"], saved[0]["record"])
        # the phantoms' patients have 1-2 images and a patient's images share a split: the
        # test set repeats patients, so the comparison is per patient (clustered DeLong)
        from jcxr.data.shards import read_index

        patients = read_index(phantom_shards, 32).patient_ids[saved[0]["record"]]
        assert np.unique(patients).size < patients.size
        positive = saved[0]["label"] == 1
        if np.unique(patients[positive]).size >= 2:  # enough to cluster (Nodule here)
            clustered += 1
            assert comp["cluster_by"] == "patient"
            assert comp["n_clusters"] == np.unique(patients).size
        else:  # Mass: its 2 test positives are one patient's images: said, not hidden
            assert comp["cluster_by"] is None and "too few to cluster" in comp["method"]
            patients = None
        again = delong(saved[0]["label"], [p["score"] for p in saved], clusters=patients)
        np.testing.assert_allclose(comp["p"], again.p, rtol=1e-12)
        assert comp["auc"][0] != comp["auc"][1]
        power = comp["power_80"]
        assert power["reference"] == 48 and power["best"] == comp["best_resolution"]
        # the answer: the smallest sufficient resolution, consistent with the AUC table
        answer = comp["sufficient"]
        assert answer["margin"] == 0.01 and answer["reference"] == comp["best_resolution"]
        ref = comp["resolutions"].index(answer["reference"])
        for t in answer["tests"]:
            i = comp["resolutions"].index(t["resolution"])
            assert t["diff"] == pytest.approx(comp["auc"][i] - comp["auc"][ref], abs=1e-12)
            assert t["non_inferior"] == (t["p_adjusted"] <= 0.05)
            assert (t["lower_bound"] > -0.01) == (t["p"] < 0.05)
        assert answer["smallest"] is None or answer["smallest"] < answer["reference"]
        answers = ("is sufficient", "smallest sufficient resolution", "has the best AUC")
        assert f"{label}: " in html and any(answer in html for answer in answers)
    assert clustered == 1 and "per patient" in html and "clustered DeLong (Obuchowski" in html


def screenshot_if_a_browser_is_here(report):
    """Where Chromium is installed (not in CI), render the report headless as a reader's
    browser would; the HTML parser above checks the same page everywhere."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return
    shot = report.with_name("report_screenshot.png")
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          f"--screenshot={shot}", "--window-size=1200,2400",
                          report.resolve().as_uri()], capture_output=True, timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def check_report(text, config):
    """The report as a reader gets it: every section, every image decodes, every AUC names its
    split, the methods name the effective batch and each resolution's microbatch."""
    import base64
    import io

    from PIL import Image

    from tests.test_report import ReportParser

    parsed = ReportParser()
    parsed.feed(text)
    from jcxr.report.html import OPTIONAL, SECTIONS

    localised = config.eval.localise
    shown = {
        "localisation": localised,
        "external": bool(config.eval.external),
        "archs": len(config.sweep.archs) > 1,
    }
    assert parsed.sections == [s for s in SECTIONS if s not in OPTIONAL or shown[s]]
    # the figures, true-size images, and the localisation figure with a grid per finding
    extra = 1 + len(config.sweep.labels) if localised else 0
    assert len(parsed.images) == 2 + 4 * 2 + 2 * len(config.sweep.resolutions) + extra
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    words = " ".join(parsed.text)
    assert words.count("test AUC") >= len(config.sweep.labels)  # the comparison tables
    assert "validation AUC (best epoch)" in words and "test AUC" in words  # the cells table
    batch = config.train.effective_batch_size
    assert f"effective batch {batch} images" in words
    for r in config.sweep.resolutions:
        m = config.train.microbatch_size
        assert f"{r} px: microbatch {m} ({batch // m} accumulation step(s))" in words
    assert "unit of analysis: per patient" in words and "config sha256" in words


def test_report_cli_rebuilds_and_publishes_a_wandb_report(phantom_shards, tmp_path, monkeypatch):
    config = tiny_config(phantom_shards, train__epochs=1)
    config.sweep.resolutions = (32, 48)
    results = run_sweep(config, tmp_path).to_json()
    (tmp_path / "report.html").unlink()
    out = subprocess.run([sys.executable, "-m", "jcxr.report", "--workdir", str(tmp_path)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0 and (tmp_path / "report.html").is_file()
    command = [sys.executable, "-m", "jcxr.report", "--workdir", str(tmp_path / "x")]
    missing = subprocess.run(command, capture_output=True, text=True)
    assert missing.returncode == 2 and "no results.json" in missing.stderr

    # --wandb without a key: the summary run goes offline, the report is not published
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB")}
    offline = subprocess.run([*command[:-1], str(tmp_path), "--wandb"], capture_output=True,
                             text=True, env={**env, "HOME": str(tmp_path)})  # fmt: skip
    assert offline.returncode == 1 and "report not published" in offline.stderr
    assert list((tmp_path / "wandb").glob("offline-run-*"))

    # --wandb online (save intercepted): the report holds each label's table and panels
    import wandb_workspaces.reports.v2 as wr

    from jcxr import tracking
    from jcxr.report.__main__ import main

    saved = []
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setattr(tracking, "_has_api_key", lambda: True)
    monkeypatch.setattr(tracking.Tracker, "summary_run", lambda *a: None)
    monkeypatch.setattr(wr.Report, "save", lambda self, **kw: saved.append(self))
    monkeypatch.setattr(wr.Report, "url", property(lambda self: "https://wandb.ai/lab/report"))
    assert main(["--workdir", str(tmp_path), "--wandb", "--entity", "lab"]) == 0
    (report,) = saved
    assert report.entity == "lab" and report.project == "jcxr" and "tiny" in report.title
    comp = results["comparisons"]["Mass"]
    markdown = next(b for b in report.blocks if isinstance(b, wr.MarkdownBlock)).text
    for auc, se in zip(comp["auc"], comp["se"], strict=True):
        assert f"| {auc:.3f} | {se:.3f} |" in markdown
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    filters = [g.runsets[0].filters for g in grids]
    assert filters == ["Metric('Group') == 'tiny' and Metric('JobType') == 'Mass'",
                       "Metric('Group') == 'tiny' and Metric('JobType') == 'summary'"]  # fmt: skip
    texts = " ".join(b.text if isinstance(b.text, str) else str(b.text) for b in report.blocks
                     if isinstance(b, wr.P))  # fmt: skip
    assert "effective batch 16 images" in texts  # the methods, as in the HTML report
    media = grids[-1].panels[0].media_keys
    assert sorted(media) == sorted(f.stem for f in (tmp_path / "figures").glob("*.png"))


def test_lr_suggestion_is_the_steepest_descent():
    from jcxr.train.lr_find import suggest

    rates = np.geomspace(1e-6, 1.0, 200)
    losses = 1.0 - np.tanh(2 * (np.log10(rates) + 3))  # falls fastest at 1e-3
    _, suggested = suggest(rates, losses, beta=0.0)
    assert suggested == pytest.approx(1e-3, rel=0.1)


def test_lr_range_test_writes_plot_and_suggestion(phantom_shards, tmp_path):
    from jcxr.train.lr_find import range_test, suggest

    config = tiny_config(phantom_shards)
    out = range_test(config, tmp_path, steps=12, min_lr=1e-5, max_lr=1e-1)
    n = len(out["rates"])
    # the rates are the geometric schedule itself, one per step, from its start
    np.testing.assert_allclose(out["rates"], np.geomspace(1e-5, 1e-1, 12)[:n], rtol=1e-12)
    losses = np.array([np.nan if v is None else v for v in out["losses"]])
    finite = np.isfinite(losses)
    assert finite[0] and 0.1 < losses[0] < 10  # a real BCE of an untrained network
    # stopped only at the end, on a non-finite loss, or on a loss 4x the best so far
    assert n == 12 or not finite[-1] or losses[-1] > 4 * np.nanmin(losses[:-1])
    # the suggestion is the steepest descent of exactly these losses
    _, expected = suggest(np.array(out["rates"])[finite], losses[finite])
    assert out["suggested_learning_rate"] == expected
    assert (tmp_path / "lr_find.png").stat().st_size > 1000
    assert json.loads((tmp_path / "lr_find.json").read_text()) == json.loads(json.dumps(out))


# --------------------------------------------------------------------------- official test sets


def write_chexpert_from_phantoms(phantom_root: Path, root: Path) -> dict:
    """The phantoms re-filed in CheXpert's layout (JPEGs, train.csv + valid.csv): a phantom
    patient's images form one study (1-2 views); every fifth patient goes to valid.csv."""
    from PIL import Image

    from jcxr.data import chexpert

    table = nih.read_metadata(phantom_root)
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *chexpert.LABELS]
    rows = {"train": [], "valid": []}
    for i in range(len(table)):
        patient = int(table.patient_ids[i])
        split = "valid" if patient % 5 == 0 else "train"
        view = 1 + int(np.sum(table.patient_ids[:i] == table.patient_ids[i]))
        rel = f"CheXpert-v1.0-small/{split}/patient{patient:05d}/study1/view{view}_frontal.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.open(phantom_root / table.paths[i]).save(root / rel, quality=95)
        labels = [""] * len(chexpert.LABELS)
        labels[chexpert.LABELS.index("Cardiomegaly")] = str(table.label("Cardiomegaly")[i])
        rows[split].append([rel, "Female", "50", "Frontal", "PA", *labels])
    for split, body in rows.items():
        with (root / f"{split}.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows([header, *body])
    return {split: len(body) for split, body in rows.items()}


def test_official_test_set_and_study_level_evaluation_end_to_end(tmp_path):
    """CheXpert as Chizari 2021 uses it: valid.csv is the test set and a study scores the max."""
    from jcxr.data import chexpert, load_table

    phantom_root, root = tmp_path / "phantoms", tmp_path / "chexpert"
    phantom.generate(phantom_root, 200, seed=3, workers=1)
    counts = write_chexpert_from_phantoms(phantom_root, root)
    table = load_table("chexpert", root)
    shards.prepare(table, root, tmp_path / "shards", [32], workers=1, progress=False)
    config = tiny_config(tmp_path / "shards", train__epochs=1)
    config.data.source = "chexpert"
    config.data.test_split = "official"
    config.data.train_fraction, config.data.val_fraction = 0.8, 0.2
    config.eval.study_level = True
    config.sweep.labels = ("Cardiomegaly",)
    results = run_sweep(config, tmp_path / "work").to_json()
    cell = results["cells"][0]
    valid = np.flatnonzero(table.official_split == "test")
    assert len(valid) == counts["valid"]
    valid_studies, valid_labels = chexpert.study_labels(table.subset(valid))
    predictions = np.load(tmp_path / "work" / "cells" / cell_id(cell) / "predictions_test.npz")
    # one prediction per valid.csv study, keyed by its first view's record, labelled by the max
    first_view = [int(np.flatnonzero(table.study_ids == s)[0]) for s in valid_studies]
    column = valid_labels[:, table.label_names.index("Cardiomegaly")]
    order = np.argsort(first_view)
    np.testing.assert_array_equal(np.sort(predictions["record"]), np.sort(first_view))
    assert len(first_view) < len(valid)  # some studies have two views
    np.testing.assert_array_equal(predictions["label"][np.argsort(predictions["record"])],
                                  column[order])  # fmt: skip
    assert results["comparisons"]["Cardiomegaly"]["split"] == "test"
    n = results["comparisons"]["Cardiomegaly"]
    assert n["n_positive"] + n["n_negative"] == len(valid_studies)
    # no training or validation image comes from a valid.csv patient
    train_val = cell_splits(config, tmp_path / "shards")
    assert not set(table.patient_ids[train_val]) & set(table.patient_ids[valid])


def cell_id(cell):
    from jcxr.train.cell import Cell

    return Cell(cell["label"], cell["resolution"], cell["arch"], cell["seed"]).id


def cell_splits(config, shard_dir):
    from jcxr.train.inputs import label_data_for

    data = label_data_for(config, shard_dir, config.sweep.labels[0])
    return np.concatenate([data.splits["train"], data.splits["val"]])


def test_per_study_reduction_matches_chexpert_study_scores():
    from jcxr.data import chexpert
    from jcxr.train.evaluate import per_study

    rng = np.random.default_rng(0)
    study = rng.choice(np.array(["a", "b", "c", "d"]), 30)
    records = rng.permutation(30)
    probs = rng.random(30).astype(np.float32)
    labels = (rng.random(30) < 0.4).astype(np.float32)
    got_records, got_labels, got_probs = per_study(study, records, labels, probs)
    studies, expected = chexpert.study_scores(study, probs)
    np.testing.assert_allclose(got_probs, expected)
    for s, r, y in zip(studies, got_records, got_labels, strict=True):
        assert r == records[study == s].min() and y == labels[study == s].max()


def test_official_split_needs_a_source_that_has_one(phantom_shards):
    from jcxr.data.table import DataError
    from jcxr.train.inputs import label_data_for

    config = tiny_config(phantom_shards, data__test_split="official")
    with pytest.raises(DataError, match="no official test set"):
        label_data_for(config, phantom_shards, "Mass")
    config = tiny_config(phantom_shards, eval__study_level=True)
    with pytest.raises(DataError, match="no study IDs"):
        label_data_for(config, phantom_shards, "Mass")


def test_command_lines_answer_user_errors_in_one_line(phantom_shards, tmp_path):
    """Every jcxr command line: a user error is one line naming it and a non-zero exit, never a
    traceback; --debug shows the traceback."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "bad_config.py").write_text("raise ValueError('boom')\n")
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "results.json").write_text('{"name": "x", "cells": [')
    demo = str(REPO / "configs" / "demo.py")
    cases = {
        ("jcxr.train",): "--config is required",
        ("jcxr.train", "--config", str(tmp_path / "nope.py")): "nope.py: no such file",
        ("jcxr.train", "--config", str(tmp_path / "bad_config.py")): "does not load (ValueError",
        ("jcxr.train", "--config", demo, f"--workdir={tmp_path / 'a_file'}"): "not a folder",
        ("jcxr.data", "phantoms", "--out", str(tmp_path / "p"), "--images", "-5"): "at least 1",
        ("jcxr.data", "verify", str(tmp_path)): "no manifest.json",
        ("jcxr.report", "--workdir", str(cut)): "results.json: not a jcxr results file",
        ("jcxr.stats", str(tmp_path / "a_file"), "--label", "y"): "no data rows",
    }
    for args, message in cases.items():
        out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
        assert out.returncode != 0, args
        assert message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
    debug = subprocess.run([sys.executable, "-m", "jcxr.report", "--workdir", str(cut),
                            "--debug"], capture_output=True, text=True)  # fmt: skip
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_wandb_without_network_waits_briefly_then_keeps_everything_offline(
    phantom_shards, tmp_path, monkeypatch
):
    import wandb

    from jcxr import tracking

    calls, original = [], wandb.init

    def init(*args, mode=None, settings=None, **kwargs):
        calls.append((mode, settings.init_timeout))
        if mode == "online":  # what wandb raises when the service cannot be reached in time
            raise wandb.errors.CommError("timed out waiting for the W&B service")
        return original(*args, mode=mode, settings=settings, **kwargs)

    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setattr(tracking, "_has_api_key", lambda: True)
    monkeypatch.setattr(wandb, "init", init)
    config = tiny_config(phantom_shards, train__epochs=1, logging__wandb="online")
    config.sweep.resolutions = (32, 48)
    config.logging.wandb_init_timeout = 7.5
    with pytest.warns(UserWarning, match="logging offline for the rest of the sweep"):
        results = run_sweep(config, tmp_path)
    assert all(c.done for c in results.cells)
    # one online attempt, bounded by the configured timeout, then offline for everything
    assert calls == [("online", 7.5)] + [("offline", 7.5)] * 3  # 2 cells + the summary
    runs = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 3
    assert sum(b"val/auc" in run.read_bytes() for run in runs) == 2  # the cells' metrics kept


def test_kill_soak_random_moments_end_exactly_as_an_uninterrupted_run(tmp_path):
    """Three SIGKILLs at random moments (phantoms, shards, training, evaluation, the report),
    each followed by a rerun; the full-size soak is ``python tests/kill_soak.py``."""
    from tests.kill_soak import run, soak

    run(tmp_path / "reference")
    moments = soak(tmp_path / "reference", tmp_path / "killed", kills=3, seed=1, window=30.0)
    assert moments  # at least one run was really killed


def test_several_seeds_are_compared_with_training_and_test_variance(phantom_shards, tmp_path):
    """Two seeds per cell: the summary comparison is seed-aware (seed-mean AUCs, between-seed
    SD, t with Satterthwaite df), equal to compare_seeds on the saved predictions."""
    from jcxr.data.shards import read_index
    from jcxr.stats import compare_seeds
    from jcxr.summary import console_summary

    config = tiny_config(phantom_shards, train__epochs=1)
    config.sweep.labels = ("Nodule",)
    config.sweep.resolutions = (32, 48)
    config.sweep.seeds = (0, 1)
    result = run_sweep(config, tmp_path)
    comp = result.comparisons["Nodule"]
    assert comp.seed is None and comp.seeds == (0, 1) and "over 2 seeds" in comp.method
    assert len(result.all_comparisons) == 3  # seed 0, seed 1, across seeds
    per_seed = {(c.cell.resolution, c.cell.seed): c.splits["test"]["auc"] for c in result.cells}
    for i, r in enumerate(comp.resolutions):
        assert comp.auc[i] == pytest.approx((per_seed[r, 0] + per_seed[r, 1]) / 2, abs=1e-12)
    saved = [[np.load(tmp_path / "cells" / f"Nodule__resnet_tiny__r{r}__s{s}"
                      / "predictions_test.npz") for s in (0, 1)] for r in (32, 48)]  # fmt: skip
    labels, records = saved[0][0]["label"], saved[0][0]["record"]
    patients = read_index(phantom_shards, 32).patient_ids[records]
    cube = np.array([[p["score"] for p in row] for row in saved])
    again = compare_seeds(labels, cube, clusters=patients)
    np.testing.assert_allclose(comp.p, again.pvalue, rtol=1e-10)
    np.testing.assert_allclose(comp.seed_sd, again.seed_sd, rtol=1e-10)
    assert (tmp_path / "comparisons" / "Nodule__resnet_tiny__seeds0-1.txt").is_file()
    assert "2 seeds (0, 1)" in console_summary(result)
    assert "2 seeds (0, 1)" in (tmp_path / "report.html").read_text()
