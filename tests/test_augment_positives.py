"""Cardona Cardenas et al. 2020's augmentation: shear, and augmenting positive images only."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jcxr import models
from jcxr.data.augment import Augmentation, augment, key_for, warp
from jcxr.train.step import Steps

PLAIN = Augmentation(0, 0, 0, False, 0, 0)


def test_shear_slants_a_vertical_line_by_tan_of_the_angle():
    """A 45 degree shear moves row y's pixels by y - centre columns (whole pixels: exact)."""
    image = np.zeros((9, 9), np.float32)
    image[:, 4] = 1.0  # a vertical line through the centre
    sheared = np.asarray(warp(jnp.asarray(image), 0.0, shear=45.0))
    for y in range(9):
        expected = np.zeros(9, np.float32)
        if 0 <= 4 + (y - 4) < 9:
            expected[4 + (y - 4)] = 1.0
        np.testing.assert_allclose(sheared[y], expected, atol=1e-5)
    np.testing.assert_allclose(warp(jnp.asarray(image), 0.0, shear=0.0), image, atol=1e-6)


def test_positives_only_leaves_negatives_untouched():
    pixels = jnp.asarray(np.random.default_rng(0).integers(0, 256, (6, 32, 32)), jnp.uint8)
    positive = jnp.array([True, False, True, False, False, True])
    config = Augmentation(max_rotation=15, max_shear=10, positives_only=True)
    out = np.asarray(augment(key_for(0, 3), pixels, config, positive))
    plain = np.asarray(pixels.astype(jnp.float32) / 255.0)
    mask = np.asarray(positive)
    np.testing.assert_array_equal(out[~mask], plain[~mask])
    assert all(np.abs(out[i] - plain[i]).max() > 0.1 for i in np.flatnonzero(mask))
    # the positives are augmented as they would be with every image augmented
    every = Augmentation(max_rotation=15, max_shear=10)
    np.testing.assert_array_equal(
        out[mask], np.asarray(augment(key_for(0, 3), pixels, every))[mask]
    )


def test_without_shear_the_augmentation_draws_what_it_drew_before():
    """max_shear = 0 takes nothing from the other draws' keys: old configs augment as before."""
    pixels = jnp.asarray(np.random.default_rng(1).integers(0, 256, (3, 16, 16)), jnp.uint8)
    image = pixels[0].astype(jnp.float32) / 255.0
    k_rot, k_scale, k_shift, k_flip, *_ = jax.random.split(jax.random.split(key_for(2, 5), 3)[0], 6)
    config = Augmentation(max_brightness=0, max_contrast=0)
    angle = jax.random.uniform(k_rot, (), minval=-1, maxval=1) * config.max_rotation
    scale = 1.0 + jax.random.uniform(k_scale, (), minval=-1, maxval=1) * config.max_scale
    shift = jax.random.uniform(k_shift, (2,), minval=-1, maxval=1) * config.max_translate * 16
    by_hand = warp(image, angle, scale, shift, jax.random.bernoulli(k_flip))
    np.testing.assert_allclose(augment(key_for(2, 5), pixels, config)[0], by_hand, atol=1e-6)


def one_step(augmentation, labels):
    model = models.create("resnet_tiny", num_outputs=1, rngs=nnx.Rngs(0))
    steps = Steps(model, optax.sgd(0.1), effective_batch_size=4, microbatch_size=4,
                  augmentation=augmentation, seed=0, dtype=jnp.float32,
                  positive_weight=1.0)  # fmt: skip
    pixels = jnp.asarray(np.random.default_rng(2).integers(0, 256, (4, 32, 32)), jnp.uint8)
    steps.step(pixels, jnp.asarray(labels, jnp.float32), 0)
    return jax.tree.leaves(jax.device_get(steps.params))


def test_the_training_step_augments_only_the_positive_images():
    config = Augmentation(max_rotation=20, max_shear=10, positives_only=True)
    negatives = [0.0, 0.0, 0.0, 0.0]
    # no positive: as if not augmented at all (to float rounding: XLA fuses the two differently)
    for a, b in zip(one_step(config, negatives), one_step(None, negatives), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    mixed = [1.0, 0.0, 1.0, 0.0]
    gaps = [np.abs(a - b).max() for a, b in zip(one_step(config, mixed), one_step(None, mixed),
                                                strict=True)]  # fmt: skip
    assert max(gaps) > 1e-3


def test_the_config_reaches_the_step(phantom_shards):
    from jcxr.results import Cell
    from jcxr.train.build import build_steps

    from .helpers import tiny_config

    config = tiny_config(phantom_shards, train__max_shear=12.0,
                         train__augment_positives_only=True)  # fmt: skip
    steps = build_steps(config, Cell("Mass", 32, "resnet_tiny", 0),
                        types.SimpleNamespace(positive_weight=1.0), optax.sgd(0.1),
                        log=lambda *_: None)  # fmt: skip
    assert steps.augmentation.max_shear == 12.0 and steps.augmentation.positives_only
