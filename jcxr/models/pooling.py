"""Pooling with torch's semantics (NHWC), and max pooling's gradient written for XLA:CPU.

The gradient of ``lax.reduce_window`` max is XLA's select-and-scatter, which XLA:CPU runs
2-5x slower than the same gradient written as k x k shifted slices: 41 against 9 ms forward +
backward for the stem pooling of a ResNet or DenseNet at 64 px (batch 32, 32 x 32 maps of 64
channels), 162 against 88 ms at 128 px, 485 against 191 at 224 px (``bench/conv_paths.py
--kind maxpool``, docs/benchmarks.md). On the CPU, :func:`max_pool` therefore keeps
``reduce_window`` for the forward and routes the gradient through the slices. Like
select-and-scatter's and torch's, the gradient goes whole to the first maximum of each window
in row-major order (ties are common: the stem pools ReLU outputs, and many are 0), so it is
bit-identical to XLA's.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

Array = jax.Array


def max_pool(x: Array, kernel: int, stride: int, padding: int) -> Array:
    """torch MaxPool2d (floor mode): padding counts as -inf."""
    if jax.default_backend() == "cpu":
        return _max_pool_sliced_gradient(x, kernel, stride, padding)
    return _reduce_window_max(x, kernel, stride, padding)


def _reduce_window_max(x: Array, kernel: int, stride: int, padding: int) -> Array:
    return nnx.max_pool(
        x, (kernel, kernel), strides=(stride, stride), padding=((padding, padding),) * 2
    )


def window_views(x: Array, kernel, strides, padding, value=0.0) -> list[Array]:
    """The kh x kw shifted, strided views of ``x`` (NHWC) that a window's positions see, in
    row-major order of the window: view ``t`` holds every window's element ``t``. ``kernel``
    and ``strides`` are (rows, columns); ``padding`` is explicit ((top, bottom), (left, right)),
    filled with ``value``."""
    (kh, kw), (sh, sw), ((top, bottom), (left, right)) = kernel, strides, padding
    x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)
    ho = (x.shape[1] - kh) // sh + 1
    wo = (x.shape[2] - kw) // sw + 1
    return [
        x[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]
        for i in range(kh)
        for j in range(kw)
    ]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool_sliced_gradient(x: Array, kernel: int, stride: int, padding: int) -> Array:
    return _reduce_window_max(x, kernel, stride, padding)


def _forward(x, kernel, stride, padding):
    pooled = _reduce_window_max(x, kernel, stride, padding)
    return pooled, (x, pooled)


def _backward(kernel, stride, padding, residuals, gradient):
    x, pooled = residuals

    def route(gradient):
        square = ((padding, padding),) * 2
        views, scatter = jax.vjp(
            lambda x: window_views(x, (kernel,) * 2, (stride,) * 2, square, -jnp.inf), x
        )
        taken = jnp.zeros(pooled.shape, bool)
        shares = []
        for view in views:
            first = (view == pooled) & ~taken  # the first maximum of its window takes it all
            taken = taken | first
            shares.append(jnp.where(first, gradient, jnp.zeros((), gradient.dtype)))
        return scatter(shares)

    # Both branches are the same: the conditional is there as a fusion barrier. Without it XLA
    # fuses the incoming gradient's own computation into each of the k*k taps (in DenseNet121,
    # the sum over the first dense block's six layers: 112 ms a step at 64 px instead of 14),
    # and XLA:CPU drops lax.optimization_barrier before fusion. Its operand is materialised once.
    any_value = pooled[(0,) * pooled.ndim]
    return jax.lax.cond(jnp.isfinite(any_value), route, route, gradient)


_max_pool_sliced_gradient.defvjp(_forward, _backward)


def avg_pool(x: Array, kernel: int, stride: int) -> Array:
    """torch AvgPool2d without padding (floor mode)."""
    return nnx.avg_pool(x, (kernel, kernel), strides=(stride, stride), padding="VALID")


def avg_pool_same(x: Array) -> Array:
    """torch ``avg_pool2d(x, 3, stride=1, padding=1)``: padding counts as zeros (divide by 9)."""
    return nnx.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                        count_include_pad=True)  # fmt: skip


def global_avg_pool(x: Array) -> Array:
    """``[B, H, W, C] -> [B, C]``, averaged in float32."""
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2)).astype(x.dtype)
