"""Building blocks with torchvision's semantics, in Flax NNX, NHWC.

Every parameterised layer keeps torchvision's child name, so a variable's path in
``nnx.state(model)`` maps to its torchvision key by a fixed rule (see ``torchvision.py``):
``Sequential`` containers hold their children in ``layers``, a path segment dropped in torch names.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jcxr.models import cpu_kernels
from jcxr.models.activations import relu, silu
from jcxr.models.batchnorm import BatchNorm
from jcxr.models.inputs import input_conv
from jcxr.models.pooling import global_avg_pool, window_views

Array = jax.Array


def _host_initializer(scale: float, mode: str, distribution: str):
    """Variance-scaling initialiser that draws with numpy, seeded from the JAX key.

    Eager JAX initialisers compile one XLA program per parameter shape (tens of seconds for an
    EfficientNet on CPU); drawing on the host costs milliseconds and is just as deterministic.
    Under tracing (``nnx.eval_shape``, ``jit``) it falls back to JAX's own initialiser.
    """
    traced = nnx.initializers.variance_scaling(scale, mode, distribution)

    def init(key, shape, dtype=jnp.float32):
        if isinstance(key, jax.core.Tracer):
            return traced(key, shape, dtype)
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan = shape[-2] * receptive if mode == "fan_in" else shape[-1] * receptive
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
        std = np.sqrt(scale / fan)
        if distribution == "normal":
            values = rng.normal(0.0, std, shape)
        else:
            values = rng.uniform(-np.sqrt(3.0) * std, np.sqrt(3.0) * std, shape)
        return jnp.asarray(values, dtype)

    return init


# torchvision initialises convolutions with Kaiming-normal (fan_out) and classifiers uniformly;
# these matter only when no pretrained weights are loaded.
conv_init = _host_initializer(2.0, "fan_out", "normal")
dense_init = _host_initializer(1.0 / 3.0, "fan_in", "uniform")


# XLA:CPU's convolution falls off a cliff on tiny feature maps: a 3x3 convolution over 2x2 maps
# of 512 channels (ResNet34's last stage at 64 px, batch 32) takes 612 ms forward where the same
# product written as im2col + one matmul takes 9 ms; the stride-2 one entering that stage takes
# 112 ms backward against 7 ms. At 8x8 and up the convolution is as fast or faster.
SMALL_MAP = 4
# XLA:CPU's grouped convolution is slow for depthwise layers (one group per channel) at every map
# size; written as k x k shifted slices times a per-channel weight, XLA fuses the whole layer
# into one loop. Measured per layer in docs/benchmarks.md ("Depthwise convolutions").
# A 1x1 convolution is a matmul over the pixels, and XLA:CPU runs it 1.5-4x faster written as
# one (forward and backward, every map size: docs/benchmarks.md, "jcxr beside PyTorch on this
# machine, and where the time goes", its 1 x 1 convolutions table).
# A k x k convolution over one input channel (the stem on grey input, jcxr/models/inputs.py) is
# im2col + one matmul at every map size: its patches are only k * k times the input, and its
# forward + weight gradient run 2.2-2.4x faster that way than as XLA's convolution
# (docs/benchmarks.md, "The first convolution on grey input").


def _matmul(x, w, precision):
    """``x`` ``[N, H, W, K]`` times ``w`` ``[K, O]`` as one 2-D matmul over the N*H*W rows (a
    2-D dot, not an einsum over NHWC: its gradients need no layout transposes)."""
    n, h, width, k = x.shape
    return jnp.matmul(x.reshape(n * h * width, k), w, precision=precision).reshape(n, h, width, -1)


def _shifted_slices(x, rhs, strides, padding):
    """A depthwise convolution (``rhs`` ``[kh, kw, 1, C]``) as k x k shifted slices times
    per-channel weights: XLA fuses the whole layer into one loop."""
    kh, kw, _, c = rhs.shape
    taps = rhs.reshape(kh * kw, c).astype(x.dtype)
    return sum(view * taps[t] for t, view in enumerate(window_views(x, (kh, kw), strides, padding)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise(x, rhs, strides, padding):
    """:func:`_shifted_slices` whose kernel gradient is jcxr's CPU kernel: XLA computes it 6-9x
    slower, copying each tap's strided slice out before reducing it (docs/benchmarks.md, "A
    kernel of our own: the depthwise weight gradient"). The input gradient stays XLA's."""
    return _shifted_slices(x, rhs, strides, padding)


def _depthwise_forward(x, rhs, strides, padding):
    return _shifted_slices(x, rhs, strides, padding), (x, rhs)


def _depthwise_backward(strides, padding, saved, g):
    x, rhs = saved
    _, input_gradient = jax.vjp(lambda x: _shifted_slices(x, rhs, strides, padding), x)
    kernel = cpu_kernels.depthwise_weight_gradient(x, g, rhs.shape[:2], strides, padding)
    return input_gradient(g)[0], kernel.reshape(rhs.shape)


_depthwise.defvjp(_depthwise_forward, _depthwise_backward)


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    precision=None,
    **kwargs,
):
    """``lax.conv_general_dilated`` for nnx.Conv's NHWC/HWIO layout, with three CPU paths: a
    1 x 1 convolution is a matmul over the (strided) pixels; a k x k convolution over maps of at
    most ``SMALL_MAP`` px, or over one input channel, is im2col + one matmul; a depthwise
    convolution is a sum of shifted slices times per-channel weights."""
    kh, kw, cin, cout = rhs.shape
    plain = all(d in (None, 1) for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
    mine = jax.default_backend() == "cpu" and plain and not isinstance(padding, str)
    dense = mine and feature_group_count == 1
    if dense and kh * kw == 1 and not np.any(padding):
        sh, sw = window_strides
        return _matmul(lhs[:, ::sh, ::sw, :], rhs.reshape(cin, cout), precision)
    if dense and kh * kw > 1 and (cin == 1 or max(lhs.shape[1:3]) <= SMALL_MAP):
        patches = jnp.concatenate(window_views(lhs, (kh, kw), window_strides, padding), axis=-1)
        return _matmul(patches, rhs.reshape(kh * kw * cin, cout), precision)
    depthwise = feature_group_count == lhs.shape[-1] == cout and cin == 1
    if mine and depthwise and kh * kw > 1:
        strides, padding = tuple(window_strides), tuple(map(tuple, padding))
        if lhs.dtype == rhs.dtype == jnp.float32 and cpu_kernels.available():
            return _depthwise(lhs, rhs, strides, padding)
        return _shifted_slices(lhs, rhs, strides, padding)
    return jax.lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        precision=precision,
        **kwargs,
    )


def conv(
    in_features: int,
    out_features: int,
    kernel: int | tuple[int, int],
    *,
    stride: int = 1,
    padding: int | tuple[int, int] | None = None,
    groups: int = 1,
    bias: bool = False,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    """A torch-style convolution: explicit symmetric padding (default ``(kernel - 1) // 2``).

    Symmetric padding, not TF 'SAME', so that stride-2 layers see the same pixels as torch at
    even and odd input sizes. ``kernel`` and ``padding`` are one number or torch's (rows, columns)
    (InceptionV3's 1 x 7 and 7 x 1 convolutions).
    """
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if padding is None:
        padding = ((kh - 1) // 2, (kw - 1) // 2)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return nnx.Conv(
        in_features,
        out_features,
        (kh, kw),
        strides=(stride, stride),
        padding=((ph, ph), (pw, pw)),
        feature_group_count=groups,
        use_bias=bias,
        kernel_init=conv_init,
        dtype=dtype,
        param_dtype=jnp.float32,
        conv_general_dilated=conv_general_dilated,
        rngs=rngs,
    )


def dense(in_features: int, out_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(
        in_features,
        out_features,
        kernel_init=dense_init,
        dtype=dtype,
        param_dtype=jnp.float32,
        rngs=rngs,
    )


class Sequential(nnx.Module):
    """Children applied in order, like torch.nn.Sequential (indices are torch's indices)."""

    def __init__(self, *layers: Callable):
        self.layers = nnx.List(layers)

    def __call__(self, x: Array) -> Array:
        for layer in self.layers:
            x = layer(x)
        return x

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int):
        return self.layers[index]


class ConvNormAct(Sequential):
    """torchvision's Conv2dNormActivation: conv (index 0), batch norm (1), optional activation."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel: int,
        *,
        stride: int = 1,
        groups: int = 1,
        activation: Callable | None = silu,
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        super().__init__(
            conv(
                in_features,
                out_features,
                kernel,
                stride=stride,
                groups=groups,
                dtype=dtype,
                rngs=rngs,
            ),
            BatchNorm(out_features, momentum=bn_momentum, epsilon=bn_epsilon, dtype=dtype),
        )
        self.activation = activation

    def __call__(self, x: Array) -> Array:
        x = super().__call__(x)
        return x if self.activation is None else self.activation(x)

    def on_images(self, x: Array) -> Array:
        """As a model's first layer: ``x`` normalised RGB or grey (:func:`input_conv`)."""
        x = self.layers[1](input_conv(self.layers[0], x))
        return x if self.activation is None else self.activation(x)


class FeaturesThenHead:
    """For models whose feature extractor is one ``Sequential`` named ``features``
    (EfficientNet, MobileNet): its children are the named stages, ``features.0`` onward."""

    def stages(self) -> list[tuple[str, Callable]]:
        """``features.0`` (the stem, which takes normalised RGB or grey), ``features.1``, ..."""
        first, *rest = self.features.layers
        later = [(f"features.{i}", layer) for i, layer in enumerate(rest, start=1)]
        return [("features.0", first.on_images), *later]

    def feature_map(self, x):
        """``[B, H, W, 3] -> [B, H / 32, W / 32, C]`` feature map before pooling."""
        return run_stages(self.stages(), x)

    def __call__(self, x):
        return self.head(self.feature_map(x)).astype(jnp.float32)


def run_stages(stages: Sequence[tuple[str, Callable]], x: Array) -> Array:
    """Apply a model's named ``stages()`` (or a slice of them) in order."""
    for _, stage in stages:
        x = stage(x)
    return x


class StochasticDepth(nnx.Module):
    """torchvision.ops.StochasticDepth(mode="row"): drop a residual branch per sample in training.

    Kept samples are scaled by 1 / (1 - rate); identity when ``deterministic`` (eval) or rate 0.
    """

    def __init__(self, rate: float, *, rngs: nnx.Rngs):
        self.rate = rate
        self.deterministic = False
        self.rngs = rngs.fork() if rate > 0 else None

    def __call__(self, x: Array) -> Array:
        if self.deterministic or self.rate == 0.0:
            return x
        survival = 1.0 - self.rate
        keep = jax.random.bernoulli(self.rngs.dropout(), survival, (x.shape[0], 1, 1, 1))
        return x * keep.astype(x.dtype) / survival


# --------------------------------------------------------------------------- heads

HEADS = ("linear", "concat_pool", "mlp")


class LinearHead(nnx.Module):
    """Global average pool -> (dropout) -> dense: torchvision's own classifier."""

    def __init__(self, in_features, num_outputs, *, dropout=0.0, dtype=jnp.float32, rngs):
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.dense = dense(in_features, num_outputs, dtype=dtype, rngs=rngs)

    def __call__(self, features: Array) -> Array:
        return self.dense(self.dropout(global_avg_pool(features)))


class ConcatPoolHead(nnx.Module):
    """fastai's head (Sabottke & Spieler 2020, Chizari 2021): concat(avg, max) pool -> BN ->
    dropout -> dense(512) -> ReLU -> BN -> dropout -> dense."""

    def __init__(
        self, in_features, num_outputs, *, dropout=0.0, hidden=512, dtype=jnp.float32, rngs
    ):
        self.norm1 = BatchNorm(2 * in_features, dtype=dtype)
        self.dropout1 = nnx.Dropout(dropout / 2, rngs=rngs)  # fastai: half rate before the first
        self.dense1 = dense(2 * in_features, hidden, dtype=dtype, rngs=rngs)
        self.norm2 = BatchNorm(hidden, dtype=dtype)
        self.dropout2 = nnx.Dropout(dropout, rngs=rngs)
        self.dense2 = dense(hidden, num_outputs, dtype=dtype, rngs=rngs)

    def __call__(self, features: Array) -> Array:
        pooled = jnp.concatenate([global_avg_pool(features), jnp.max(features, axis=(1, 2))], -1)
        x = self.dense1(self.dropout1(self.norm1(pooled)))
        return self.dense2(self.dropout2(self.norm2(relu(x))))


class MLPHead(nnx.Module):
    """Cardona Cardenas et al. 2020's top: average pool -> 3 dense layers, ReLU and dropout
    between."""

    def __init__(
        self,
        in_features,
        num_outputs,
        *,
        dropout=0.3,
        hidden: Sequence[int] = (512, 128),
        dtype=jnp.float32,
        rngs,
    ):
        sizes = [in_features, *hidden, num_outputs]
        self.denses = nnx.List(
            [dense(a, b, dtype=dtype, rngs=rngs) for a, b in itertools.pairwise(sizes)]
        )
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, features: Array) -> Array:
        x = global_avg_pool(features)
        for layer in self.denses[:-1]:
            x = self.dropout(relu(layer(x)))
        return self.denses[-1](x)


def make_head(kind: str, in_features: int, num_outputs: int, *, dropout: float, dtype, rngs):
    """``kind`` one of :data:`HEADS`, or ``"imagenet"``: the architecture's own ImageNet
    classifier (``jcxr.models.from_torchvision``), a linear head unless a model overrides it."""
    if kind in ("linear", "imagenet"):
        return LinearHead(in_features, num_outputs, dropout=dropout, dtype=dtype, rngs=rngs)
    if kind == "concat_pool":
        return ConcatPoolHead(in_features, num_outputs, dropout=dropout, dtype=dtype, rngs=rngs)
    if kind == "mlp":
        return MLPHead(in_features, num_outputs, dropout=dropout, dtype=dtype, rngs=rngs)
    raise ValueError(f"head must be one of {HEADS}; got {kind!r}")
