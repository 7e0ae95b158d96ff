"""Augmentation on the accelerator, inside jit.

The host ships uint8 ``[B, R, R]`` pixels; :func:`augment` applies Sabottke & Spieler 2020's
augmentations (random rotation up to ``max_rotation`` degrees, scale and translation with black
padding, horizontal flip, brightness and contrast) and Cardona Cardenas et al. 2020's shear
(``max_shear`` degrees) as one bilinear resampling per image, deterministic from a key (derive
it from ``(seed, step)``). With ``positives_only`` (Cardona Cardenas et al. 2020, who augmented
only the cardiomegaly images to offset the imbalance) negatives pass untouched. The same code
makes the test-time-augmentation views. The models take the result as it is,
grey (:func:`jcxr.models.grey`), or normalised RGB (:func:`jcxr.models.normalise`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Augmentation:
    max_rotation: float = 20.0  # degrees
    max_scale: float = 0.1  # zoom in or out by up to this fraction
    max_translate: float = 0.05  # fraction of the image size
    flip: bool = True
    max_brightness: float = 0.1  # added, fraction of full scale
    max_contrast: float = 0.1  # multiplied around the mean
    max_shear: float = 0.0  # degrees: x shifted by tan(shear) * y, as Keras' shear_range
    positives_only: bool = False  # augment positive images only (needs the labels)

    @property
    def is_identity(self) -> bool:
        return not (
            self.max_shear
            or self.max_rotation
            or self.max_scale
            or self.max_translate
            or self.flip
            or self.max_brightness
            or self.max_contrast
        )


def key_for(seed: int, step, view: int = 0) -> jax.Array:
    """The augmentation key of a (seed, step, view): same triple, same augmentation."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), step), view)


def augment(key: jax.Array, pixels: jax.Array, config: Augmentation,
            positive: jax.Array | None = None) -> jax.Array:  # fmt: skip
    """``[B, R, R]`` uint8 -> ``[B, R, R]`` float32 in [0, 1], randomly transformed per image
    (with ``config.positives_only``, only where ``positive`` ``[B]`` is true)."""
    images = pixels.astype(jnp.float32) / 255.0
    if config.is_identity:
        return images
    keys = jax.random.split(key, images.shape[0])
    out = jax.vmap(lambda k, im: _augment_one(k, im, config))(keys, images)
    if not config.positives_only:
        return out
    if positive is None:
        raise ValueError("Augmentation.positives_only needs the images' labels (positive=)")
    return jnp.where(jnp.asarray(positive, bool)[:, None, None], out, images)


def _augment_one(key, image, config: Augmentation):
    k_rot, k_scale, k_shift, k_flip, k_bright, k_contrast = jax.random.split(key, 6)
    # its own stream, so that a config without shear draws what it drew before shear existed
    k_shear = jax.random.fold_in(key, 7)
    size = image.shape[0]
    angle = jax.random.uniform(k_rot, (), minval=-1, maxval=1) * config.max_rotation
    scale = 1.0 + jax.random.uniform(k_scale, (), minval=-1, maxval=1) * config.max_scale
    shift = jax.random.uniform(k_shift, (2,), minval=-1, maxval=1) * config.max_translate * size
    flip = config.flip & jax.random.bernoulli(k_flip)
    shear = jax.random.uniform(k_shear, (), minval=-1, maxval=1) * config.max_shear
    out = warp(image, angle, scale, shift, flip, shear)
    brightness = jax.random.uniform(k_bright, (), minval=-1, maxval=1) * config.max_brightness
    contrast = 1.0 + jax.random.uniform(k_contrast, (), minval=-1, maxval=1) * config.max_contrast
    mean = jnp.mean(out)
    return jnp.clip((out - mean) * contrast + mean + brightness, 0.0, 1.0)


def warp(image, angle, scale=1.0, shift=(0.0, 0.0), flip=False, shear=0.0):
    """``[R, R]`` image rotated by ``angle`` degrees (counter-clockwise as displayed), zoomed by
    ``scale``, shifted by ``shift`` = (rows, columns) pixels, mirrored left-right if ``flip``,
    sheared by ``shear`` degrees (the output's column ``x`` shows the source's column
    ``x - tan(shear) * (y - centre)``, applied first); bilinear, black outside the source."""
    size = image.shape[0]
    centre = (size - 1) / 2.0
    y, x = jnp.meshgrid(
        jnp.arange(size, dtype=jnp.float32), jnp.arange(size, dtype=jnp.float32), indexing="ij"
    )
    # Output pixel p samples the source at centre + R(-angle) (p - centre - shift) / scale.
    py = y - centre - shift[0]
    px = (x - centre - shift[1]) * jnp.where(flip, -1.0, 1.0)
    theta = -jnp.deg2rad(angle)  # positive = counter-clockwise, as np.rot90 and PIL
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    src_y = (cos * py - sin * px) / scale + centre
    src_x = (sin * py + cos * px) / scale + centre
    src_x = src_x - jnp.tan(jnp.deg2rad(shear)) * (src_y - centre)
    return jax.scipy.ndimage.map_coordinates(
        image, [src_y, src_x], order=1, mode="constant", cval=0.0
    )
