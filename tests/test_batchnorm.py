"""BatchNorm that does not differ by resolution: ghost groups (config.model.batchnorm_group) and
precise statistics (config.train.precise_bn_images)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jcxr import models
from jcxr.models import normalise
from jcxr.models.batchnorm import BatchNorm, counted_images
from jcxr.train.config import validate
from jcxr.train.step import Steps
from jcxr.train.sweep import run_sweep

from .helpers import tiny_config
from .test_train import load_config


def batchnorm(group=None):
    layer = BatchNorm(4)
    layer.scale[...] = jnp.asarray([1.0, 2.0, 0.5, -1.0])
    layer.bias[...] = jnp.asarray([0.0, 1.0, -2.0, 0.5])
    layer.mean[...] = jnp.asarray([0.3, -0.1, 0.0, 1.0])
    layer.var[...] = jnp.asarray([2.0, 1.0, 0.5, 3.0])
    layer.group = group
    return layer


def test_ghost_batchnorm_is_plain_batchnorm_on_each_group_in_turn():
    x = np.random.default_rng(0).normal(2.0, 3.0, (12, 5, 5, 4)).astype(np.float32)
    ghost, plain = batchnorm(group=4), batchnorm()
    y = np.asarray(ghost(jnp.asarray(x)))
    in_turn = np.concatenate([plain(jnp.asarray(x[i : i + 4])) for i in range(0, 12, 4)])
    np.testing.assert_allclose(y, in_turn, atol=1e-5)
    np.testing.assert_allclose(ghost.mean[...], plain.mean[...], rtol=1e-6)
    np.testing.assert_allclose(ghost.var[...], plain.var[...], rtol=1e-6)
    # numpy: each group standardised by its own biased moments; one running update per group,
    # with the unbiased variance, as torch.nn.BatchNorm2d does per batch
    groups = x.reshape(3, 4, 5, 5, 4).astype(np.float64)
    mean, var = groups.mean((1, 2, 3), keepdims=True), groups.var((1, 2, 3), keepdims=True)
    scale, bias = np.asarray([1.0, 2.0, 0.5, -1.0]), np.asarray([0.0, 1.0, -2.0, 0.5])
    expected = (groups - mean) / np.sqrt(var + 1e-5) * scale + bias
    np.testing.assert_allclose(y, expected.reshape(x.shape), atol=1e-5)
    running_mean, running_var = np.asarray([0.3, -0.1, 0.0, 1.0]), np.asarray([2.0, 1.0, 0.5, 3.0])
    n = 4 * 5 * 5
    for g in range(3):
        running_mean = 0.9 * running_mean + 0.1 * mean[g].ravel()
        running_var = 0.9 * running_var + 0.1 * var[g].ravel() * n / (n - 1)
    np.testing.assert_allclose(ghost.mean[...], running_mean, rtol=1e-5)
    np.testing.assert_allclose(ghost.var[...], running_var, rtol=1e-5)
    with pytest.raises(ValueError, match="a batch of 6 is not whole groups"):
        ghost(jnp.asarray(x[:6]))


@pytest.mark.parametrize("group", [None, 4])
def test_normalisation_and_its_gradients_equal_the_textbook_formula(group):
    """The multiply-add form (``(x - mean) * a + bias``) against ``(x - mean) /
    sqrt(var + eps) * scale + bias`` written out, values and gradients with respect to input,
    scale and bias, to 1e-5, with a mean large against the spread (where the two forms round
    differently most)."""
    x = jnp.asarray(np.random.default_rng(1).normal(4.0, 0.5, (8, 5, 5, 4)), jnp.float32)
    probe = jnp.asarray(np.random.default_rng(2).normal(size=x.shape), jnp.float32)

    def ours(x, scale, bias):
        layer = batchnorm(group)
        layer.scale[...], layer.bias[...] = scale, bias
        return layer(x)

    def textbook(x, scale, bias):
        g = x.reshape(-1, group or x.shape[0], *x.shape[1:])
        mean = jnp.mean(g, axis=(1, 2, 3), keepdims=True)
        var = jnp.mean(jnp.square(g - mean), axis=(1, 2, 3), keepdims=True)
        return ((g - mean) / jnp.sqrt(var + 1e-5) * scale + bias).reshape(x.shape)

    params = (x, jnp.asarray([1.0, 2.0, 0.5, -1.0]), jnp.asarray([0.0, 1.0, -2.0, 0.5]))
    np.testing.assert_allclose(ours(*params), textbook(*params), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda *p, f=f: jnp.sum(jax.nn.relu(f(*p)) * probe), (0, 1, 2))(*params)
             for f in (ours, textbook)]  # fmt: skip
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))


def test_padding_images_are_normalised_but_never_counted():
    """Weight 0 (a study's missing views): the real images' outputs and the running
    statistics are those of BatchNorm on the real images alone; a group of padding only leaves
    the running averages unchanged."""
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 2.0, (12, 3, 3, 4)).astype(np.float32)
    real = np.array([1, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0], bool)  # groups of 4: 3, 0, 3 real
    padded, alone = batchnorm(group=4), batchnorm(group=3)
    with counted_images(jnp.asarray(real)):
        y = np.asarray(padded(jnp.asarray(x)))
    kept = np.concatenate([x[0:4][real[0:4]], x[8:12][real[8:12]]])
    np.testing.assert_allclose(y[real], alone(jnp.asarray(kept)), atol=1e-5)
    np.testing.assert_allclose(padded.mean[...], alone.mean[...], rtol=1e-5)
    np.testing.assert_allclose(padded.var[...], alone.var[...], rtol=1e-5)
    assert np.all(np.isfinite(y))  # padding rows normalised by their group's real statistics


def make_steps(group, microbatch, tx=None):
    model = models.create("resnet_tiny", rngs=nnx.Rngs(0))
    return Steps(model, tx or optax.sgd(0.1), effective_batch_size=16, microbatch_size=microbatch,
                 augmentation=None, seed=0, dtype=jnp.float32, positive_weight=2.0,
                 batchnorm_group=group, accumulate="unroll")  # fmt: skip


def batch(seed=0, n=16):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32), np.uint8), (rng.random(n) < 0.4).astype(np.float32)


def two_steps(steps):
    """Both updates' losses; parameters and running statistics after the first update (the
    second update amplifies float32 noise: 4e-7 after one update, 3e-5 after two)."""
    first = float(steps.step(*batch(0), step=0)["loss"])
    params = jax.device_get(steps.params)
    statistics = [x for x in jax.tree.leaves(jax.device_get(steps.others)) if x.dtype == np.float32]
    return [first, float(steps.step(*batch(1), step=1)["loss"])], params, statistics


def test_an_effective_batch_trains_the_same_however_it_is_cut_into_microbatches():
    """A BatchNorm group of 4: microbatches of 16, 8 and 4 give the same losses, parameters and
    running statistics; BatchNorm over the whole microbatch does not."""
    reference = two_steps(make_steps(4, 16))
    for microbatch in (8, 4):
        losses, params, statistics = two_steps(make_steps(4, microbatch))
        np.testing.assert_allclose(losses, reference[0], rtol=1e-5)  # float32 summation order
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference[1]), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        for a, b in zip(statistics, reference[2], strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    whole, cut = two_steps(make_steps(None, 16)), two_steps(make_steps(None, 4))
    assert abs(whole[0][0] - cut[0][0]) > 1e-3  # without groups the cut changes the loss
    params = zip(jax.tree.leaves(whole[1]), jax.tree.leaves(cut[1]), strict=True)
    assert max(np.max(np.abs(a - b)) for a, b in params) > 1e-2  # and the update


def train_mode_logits(steps, pixels):
    model = nnx.merge(steps.train_graph, steps.params, steps.others)
    return np.asarray(model(normalise(jnp.asarray(pixels, jnp.float32) / 255.0))[:, 0])


def test_precise_statistics_of_one_group_make_eval_mode_equal_training_mode():
    """Closed form: statistics recomputed over exactly one group are that group's moments, so
    every layer in eval mode sees what it saw in training mode on that group."""
    steps = make_steps(None, 16, optax.adam(1e-2))
    for seed in (0, 1, 2):
        steps.step(*batch(seed), step=seed)  # weights and running averages move apart
    pixels, _ = batch(7)
    before = steps.predict(pixels)[:, 0]
    train_mode = train_mode_logits(steps, pixels)
    assert np.max(np.abs(before - train_mode)) > 1e-2  # the running averages lag the weights
    assert steps.recompute_batchnorm([pixels]) == 1
    np.testing.assert_allclose(steps.predict(pixels)[:, 0], train_mode, atol=1e-4)


def test_precise_statistics_are_population_moments_over_the_groups():
    """The stem's BatchNorm after recomputing over two batches of two groups each: mean and
    variance of its input over all 32 images (equal-sized groups: E[group mean] is the mean,
    E[group mean square] - mean ** 2 the population variance)."""
    steps = make_steps(8, 16)
    steps.step(*batch(0), step=0)
    batches = [batch(5)[0], batch(6)[0]]
    assert steps.recompute_batchnorm(batches) == 2
    model = nnx.merge(steps.eval_graph, steps.params, steps.others)
    pixels = np.concatenate(batches).astype(np.float32) / 255.0
    stem = np.asarray(model.conv1(normalise(jnp.asarray(pixels))), np.float64)
    np.testing.assert_allclose(model.bn1.mean[...], stem.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.bn1.var[...], stem.var((0, 1, 2)), rtol=1e-3, atol=1e-6)


def test_batchnorm_config_is_checked():
    for field, value, message in [
        ("model.batchnorm_group", -1, r"config.model.batchnorm_group = -1; expected 0"),
        ("model.batchnorm_group", 5, r"effective_batch_size = 32 is not a whole number of "),
        ("train.precise_bn_images", -8, r"config.train.precise_bn_images = -8"),
    ]:
        config = load_config("demo")
        section, name = field.split(".")
        config[section][name] = value
        with pytest.raises(ValueError, match=message):
            validate(config)
    config = load_config("demo")
    config.train.microbatch_size = "auto"
    config.model.batchnorm_group = 0
    with pytest.raises(ValueError, match=r"'auto' with config.model.batchnorm_group = 0"):
        validate(config)
    config.model.batchnorm_group = 8
    validate(config)


def test_a_cell_evaluates_with_statistics_that_depend_only_on_its_weights(phantom_shards, tmp_path):
    """At learning rate 0 the weights never move. With precise statistics every epoch's
    validation is the same (recomputed from the same weights on the same unaugmented images);
    with the running averages of training it is not (they keep moving with each batch)."""
    histories = {}
    for precise in (1024, 0):
        config = tiny_config(phantom_shards, train__epochs=2, optim__learning_rate=0.0,
                             train__precise_bn_images=precise)  # fmt: skip
        (cell,) = run_sweep(config, tmp_path / str(precise)).cells
        histories[precise] = [(e["loss"], e["auc"]) for e in cell.history]
    first, second = histories[1024]
    assert first == second
    first, second = histories[0]
    assert abs(first[0] - second[0]) > 1e-4
