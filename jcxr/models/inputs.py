"""What the models take as input, and their first convolution on grey radiographs.

The ImageNet weights expect RGB normalised with ImageNet's mean and std. A radiograph is grey,
so its RGB version is the grey image repeated three times and normalised per channel: every
channel is an affine function of the one grey value. The first convolution therefore needs
only one input channel. :func:`input_conv` folds the three channels' kernels (and the
normalisation) into one, and adds the normalisation's offset as one map shared by the batch.
That offset is not a constant: the convolution's zero padding is zero in normalised RGB, so it
is a convolution of the "inside the image" mask. The result is ``conv(normalise(grey))`` to
float rounding, for a fraction of the stem's cost (ResNet34's 7 x 7 stem, batch 32, forward +
weight gradient on the CPU: 31 -> 10 ms at 64 px, 722 -> 250 ms at 224 px; ``python
bench/conv_paths.py --kind stem``).
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Inputs are normalised with these after grey -> RGB (channel order R, G, B).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Google's InceptionV3 and Keras' Xception weights expect mean 0.5 and std 0.5 instead.
HALF = (0.5, 0.5, 0.5)


def normalise(images: jax.Array, dtype=jnp.float32) -> jax.Array:
    """``[B, R, R]`` grey in [0, 1] -> ``[B, R, R, 3]`` as the ImageNet weights expect: grey
    repeated to RGB, then ImageNet mean/std per channel."""
    # numpy constants, made at call time: a device array made at import would start the XLA
    # backend before jax.distributed.initialize can run.
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    rgb = jnp.repeat(images[..., None], 3, axis=-1)
    return ((rgb - mean) / std).astype(dtype)


def grey(images: jax.Array, dtype=jnp.float32) -> jax.Array:
    """``[B, R, R]`` grey in [0, 1] -> ``[B, R, R, 1]``, the models' other input: the same
    logits as :func:`normalise`'s RGB, with a first convolution over one channel."""
    return images[..., None].astype(dtype)


def imagenet_to_half(x: jax.Array) -> jax.Array:
    """ImageNet-normalised pixels -> normalised with mean 0.5 and std 0.5, what Google's
    InceptionV3 and Keras' Xception weights expect (torchvision's ``transform_input``)."""
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    return x * (std / 0.5).astype(x.dtype) + ((mean - 0.5) / 0.5).astype(x.dtype)


def input_conv(conv: nnx.Conv, x: jax.Array, *, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """A model's first convolution, on either input: ``x`` ``[B, H, W, 3]`` RGB normalised with
    ``mean`` and ``std`` (the plain ``conv(x)``), or ``[B, H, W, 1]`` grey in [0, 1], for which
    it returns ``conv`` of that grey repeated to RGB and normalised, with one input channel."""
    if x.shape[-1] != 1:
        return conv(x)
    if conv.in_features != 3 or conv.feature_group_count != 1:
        raise ValueError(
            f"a grey [B, H, W, 1] input needs a first convolution over 3 channels, ungrouped; "
            f"this one takes {conv.in_features} in {conv.feature_group_count} groups"
        )
    kernel = conv.kernel[...]  # [kh, kw, 3, O], float32
    scale = np.float32(1.0) / np.asarray(std, np.float32)
    shift = -np.asarray(mean, np.float32) * scale
    on_grey = jnp.einsum("hwco,c->hwo", kernel, scale)[:, :, None, :].astype(conv.dtype)
    on_inside = jnp.einsum("hwco,c->hwo", kernel, shift)[:, :, None, :].astype(conv.dtype)
    inside = jnp.ones((1, *x.shape[1:3], 1), conv.dtype)

    def convolve(lhs, rhs):  # through jcxr's CPU paths, as conv(x) would
        return conv.conv_general_dilated(
            lhs, rhs, conv.strides, conv.padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=conv.precision,
        )  # fmt: skip

    offset = convolve(inside, on_inside)[0]  # [H', W', O], the same for every image
    # Added through an einsum so that its gradient, a sum over the batch, is a matmul: XLA:CPU's
    # reduction over the leading axis took 11 ms of a 20 ms stem gradient (7 x 7, 64 px).
    batch = jnp.ones(x.shape[0], conv.dtype)
    y = convolve(x.astype(conv.dtype), on_grey) + jnp.einsum("b,hwo->bhwo", batch, offset)
    return y if conv.bias is None else y + conv.bias[...].astype(conv.dtype)


def half_input_conv(conv: nnx.Conv, x: jax.Array) -> jax.Array:
    """:func:`input_conv` for weights that expect mean 0.5 and std 0.5 (InceptionV3, Xception):
    ImageNet-normalised RGB is converted first (:func:`imagenet_to_half`); grey gets that
    normalisation folded into the convolution."""
    if x.shape[-1] == 1:
        return input_conv(conv, x, mean=HALF, std=HALF)
    return conv(imagenet_to_half(x))
