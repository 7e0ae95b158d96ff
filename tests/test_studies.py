"""Training on studies (config.train.unit = "study", Chizari 2021): the study loader, the
study step (max over real views, padding never counted) and a study sweep that resumes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jcxr import models
from jcxr.data import load_table, phantom, shards
from jcxr.data.pipeline import StudyLoader
from jcxr.models import normalise
from jcxr.train.checkpoints import Checkpoints
from jcxr.train.config import validate
from jcxr.train.step import Steps, study_logits
from jcxr.train.sweep import run_sweep

from .test_parallel import run_python
from .test_train import load_config, write_chexpert_from_phantoms


def make_steps(views, group=None, microbatch=8):
    model = models.create("resnet_tiny", rngs=nnx.Rngs(0))
    return Steps(model, optax.sgd(0.1), effective_batch_size=8, microbatch_size=microbatch,
                 augmentation=None, seed=0, dtype=jnp.float32, positive_weight=2.0,
                 batchnorm_group=group, views=views, accumulate="unroll")  # fmt: skip


def one_step(steps, pixels, labels, views=None):
    loss = float(steps.step(pixels, labels, 0, views)["loss"])
    return loss, jax.device_get(steps.params)


def assert_same(a, b, atol=1e-6):
    assert a[0] == pytest.approx(b[0], rel=1e-6)
    for x, y in zip(jax.tree.leaves(a[1]), jax.tree.leaves(b[1]), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


rng = np.random.default_rng(0)
PIXELS = rng.integers(0, 256, (8, 2, 32, 32), np.uint8)
LABELS = (rng.random(8) < 0.5).astype(np.float32)


def test_a_study_of_one_view_trains_exactly_like_its_image():
    image = one_step(make_steps(None), PIXELS[:, 0], LABELS)
    study = one_step(make_steps(1), PIXELS[:, :1], LABELS, np.ones((8, 1), bool))
    assert_same(study, image)


@pytest.mark.parametrize("group", [None, 2])
def test_padding_a_study_never_changes_loss_or_update(group):
    """Two real views, unpadded (V = 2) or padded to V = 3 with arbitrary pixels; also with
    BatchNorm groups of 2 studies, in microbatches of 4."""
    unpadded = one_step(make_steps(2, group, 4), PIXELS, LABELS, np.ones((8, 2), bool))
    junk = rng.integers(0, 256, (8, 1, 32, 32), np.uint8)
    views = np.concatenate([np.ones((8, 2), bool), np.zeros((8, 1), bool)], axis=1)
    padded = one_step(make_steps(3, group, 4), np.concatenate([PIXELS, junk], 1), LABELS, views)
    assert_same(padded, unpadded)
    # the junk is really there: counted as a view, it changes the result
    counted = one_step(make_steps(3, group, 4), np.concatenate([PIXELS, junk], 1), LABELS,
                       np.ones((8, 3), bool))  # fmt: skip
    assert abs(counted[0] - unpadded[0]) > 1e-4


def test_the_gradient_reaches_only_the_view_that_attains_the_max():
    model = models.create("resnet_tiny", rngs=nnx.Rngs(1))
    model.eval()  # no BatchNorm coupling between images: each view's gradient is its own
    present = jnp.asarray([[True, True, False], [True, True, True]])
    x = normalise(jnp.asarray(rng.integers(0, 256, (6, 32, 32)), jnp.float32) / 255.0)

    def total(x):
        return jnp.sum(study_logits(model(x)[:, 0].reshape(2, 3), present))

    grads = np.asarray(jax.grad(total)(x)).reshape(2, 3, -1)
    per_view = np.asarray(model(x)[:, 0]).reshape(2, 3)
    winners = np.argmax(np.where(present, per_view, -np.inf), axis=1)
    for study in range(2):
        for view in range(3):
            touched = np.abs(grads[study, view]).max() > 0
            assert touched == (view == winners[study]), (study, view, winners)
    assert float(total(x)) == pytest.approx(float(per_view[0, :2].max() + per_view[1].max()))


@pytest.fixture(scope="module")
def chexpert_shards(tmp_path_factory):
    """200 phantoms re-filed as CheXpert studies of 1-2 views, at 32 px."""
    tmp = tmp_path_factory.mktemp("chexpert")
    phantom.generate(tmp / "phantoms", 200, seed=3, workers=1)
    write_chexpert_from_phantoms(tmp / "phantoms", tmp / "root")
    table = load_table("chexpert", tmp / "root")
    shards.prepare(table, tmp / "root", tmp / "shards", [32], workers=1, progress=False)
    return tmp / "shards", table


def test_the_study_loader_serves_every_study_once_and_resumes(chexpert_shards):
    shard_dir, table = chexpert_shards
    records = np.flatnonzero(table.official_split != "test")
    labels = table.label("Cardiomegaly").astype(np.float32)
    loader = StudyLoader(shards=shard_dir, resolution=32, records=records, labels=labels,
                         batch_size=8, train=True, seed=1, studies=table.study_ids,
                         views=3)  # fmt: skip
    batches = list(loader)
    seen = np.concatenate([b["record"] for b in batches])
    assert seen.shape[1] == 3 and np.all(seen[:, 2] == -1)  # 1-2 views, padded to 3
    firsts = seen[:, 0]
    assert len(np.unique(firsts)) == len(firsts)  # no study twice
    study_of = {r: table.study_ids[r] for r in records}
    for row in seen:
        real = row[row >= 0]
        assert len({study_of[r] for r in real}) == 1  # one study per row
        assert set(real) == {r for r in records if study_of[r] == study_of[real[0]]}
    for b in batches:
        assert np.array_equal(b["views"], b["record"] >= 0)
        expected = [labels[r[r >= 0]].max() for r in b["record"]]
        assert np.array_equal(b["label"], expected)
        assert b["pixels"].shape == (8, 3, 32, 32) and not b["pixels"][~b["views"]].any()
    # resumed after two batches of epoch 1: exactly the rest of the epoch
    loader.set_state({"epoch": 1, "batch": 0})
    full = [b["record"] for b in loader]
    loader.set_state({"epoch": 1, "batch": 2})
    assert all(np.array_equal(a, b["record"]) for a, b in zip(full[2:], loader, strict=True))


def test_a_study_sweep_runs_and_resumes_like_an_uninterrupted_one(chexpert_shards, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    """Chizari 2021's recipe (studies, one frozen epoch then one-cycle, concat-pool head, the
    official test set), reduced: resnet_tiny at 32 px, 2 epochs, batches of 8 studies."""
    shard_dir, table = chexpert_shards
    config = load_config("chizari2021")
    config.data.shards = str(shard_dir)
    config.data.resize = "bilinear"
    config.sweep.labels, config.sweep.resolutions = ("Cardiomegaly",), (32,)
    config.sweep.archs, config.sweep.seeds, config.sweep.only = ("resnet_tiny",), (0,), ()
    config.train.epochs, config.train.effective_batch_size = 2, 8
    config.train.microbatch_size, config.model.batchnorm_group = 4, 2
    config.train.checkpoint_every, config.train.log_every = 3, 2
    config.eval.batch_size, config.eval.reference_resolution = 64, 32
    config.data.train_fraction, config.data.val_fraction = 0.8, 0.2
    config.logging.wandb, config.logging.progress = "disabled", False
    assert config.train.unit == "study" and config.eval.study_level
    (straight,) = run_sweep(config, tmp_path / "straight").cells
    assert straight.done and len(straight.history) == 2
    # studies per epoch: the training studies in whole batches of 8
    train_studies = len(np.unique(table.study_ids[np.load(
        tmp_path / "straight" / "splits" / "Cardiomegaly.npz")["train"]]))  # fmt: skip
    assert straight.steps == 2 * (train_studies // 8)

    original, saves = Checkpoints.save, []

    def save(self, step, steps, meta):  # interrupted right after the fourth checkpoint
        original(self, step, steps, meta)
        saves.append(step)
        if len(saves) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoints, "save", save)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, tmp_path / "resumed")
    monkeypatch.setattr(Checkpoints, "save", original)
    (resumed,) = run_sweep(config, tmp_path / "resumed").cells
    assert resumed.history == straight.history and resumed.metrics == straight.metrics
    html = (tmp_path / "resumed" / "report.html").read_text()
    assert "effective batch 8 studies (a study&#x27;s logit: the max over its views)" in html
    assert "groups of 2 studies" in html and "per study" in html


def test_the_device_dataset_serves_the_study_loaders_batches(chexpert_shards):
    from jcxr.data.device import DeviceDataset

    shard_dir, table = chexpert_shards
    loader = StudyLoader(shards=shard_dir, resolution=32, records=np.arange(len(table)),
                         labels=table.label("Cardiomegaly").astype(np.float32), batch_size=8,
                         train=True, seed=2, studies=table.study_ids, views=3)  # fmt: skip
    expected = list(loader)
    loader.set_state({"epoch": 0, "batch": 0})
    served = list(DeviceDataset(loader, jax.devices()[0]))
    assert len(served) == len(expected)
    for a, b in zip(served, expected, strict=True):
        real = b["views"]
        assert np.array_equal(np.asarray(a["pixels"])[real], b["pixels"][real])
        assert all(np.array_equal(a[k], b[k]) for k in ("views", "label", "record"))


def test_a_study_step_on_four_devices_equals_one_device():
    """Data parallel: studies sharded whole over the devices (views never split), the padding
    uncounted on every device."""
    out = run_python(
        """
        import json, jax, jax.numpy as jnp, numpy as np, optax
        from flax import nnx
        from jcxr import models
        from jcxr.train import parallel
        from jcxr.train.step import Steps

        def steps(mesh):
            model = models.create("resnet_tiny", rngs=nnx.Rngs(3))
            return Steps(model, optax.sgd(0.05), effective_batch_size=8, microbatch_size=8,
                         augmentation=None, seed=0, dtype=jnp.float32, positive_weight=2.0,
                         batchnorm_group=2, views=3, mesh=mesh)
        one = steps(parallel.make_mesh(jax.devices()[:1]))
        four = steps(parallel.make_mesh(jax.devices()))
        four.load_state(parallel.replicate(jax.tree.map(jnp.copy, one.state), four.mesh))
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
        views = rng.random((8, 3)) < 0.6
        views[:, 0] = True
        labels = (rng.random(8) < 0.4).astype(np.float32)
        a, b = one.step(pixels, labels, 0, views), four.step(pixels, labels, 0, views)
        diff = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                   for x, y in zip(jax.tree.leaves(one.params), jax.tree.leaves(four.params)))
        print(json.dumps({"losses": [float(a["loss"]), float(b["loss"])], "params": diff,
                          "devices": len(jax.tree.leaves(four.params)[0].devices())}))
        """,
        devices=4,
    )
    assert out["devices"] == 4
    assert out["losses"][1] == pytest.approx(out["losses"][0], abs=1e-5)
    assert out["params"] < 1e-5


def test_study_training_needs_study_evaluation():
    config = load_config("demo")
    config.train.unit = "study"
    with pytest.raises(ValueError, match=r"set config.eval.study_level = True"):
        validate(config)
    config.train.unit = "studies"
    with pytest.raises(ValueError, match=r"config.train.unit = 'studies'"):
        validate(config)


def test_study_cells_placed_one_per_device(chexpert_shards, tmp_path):
    shard_dir, _ = chexpert_shards
    out = run_python(
        f"""
        import json
        from pathlib import Path
        from tests.test_train import load_config
        from jcxr.train.sweep import run_sweep
        config = load_config("chizari2021")
        config.data.shards, config.data.resize = {str(shard_dir)!r}, "bilinear"
        config.sweep.labels, config.sweep.resolutions = ("Cardiomegaly",), (32,)
        config.sweep.archs, config.sweep.seeds, config.sweep.only = ("resnet_tiny",), (0, 1), ()
        config.train.epochs, config.train.effective_batch_size = 1, 8
        config.train.microbatch_size, config.model.batchnorm_group = 4, 2
        config.eval.batch_size, config.eval.reference_resolution = 64, 32
        config.data.train_fraction, config.data.val_fraction = 0.8, 0.2
        config.logging.wandb, config.logging.progress = "disabled", False
        config.parallel.placement = "per_device"
        cells = run_sweep(config, Path({str(tmp_path)!r})).to_json()["cells"]
        print(json.dumps(cells))
        """,
        devices=2,
    )
    assert [c["status"] for c in out] == ["done", "done"]
    assert sorted(c["devices"][0] for c in out) == ["cpu:0", "cpu:1"]  # one study cell each
