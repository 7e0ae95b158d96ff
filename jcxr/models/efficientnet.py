"""EfficientNet B0-B7 (Tan & Le 2019), as torchvision builds them."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jcxr.models.activations import silu
from jcxr.models.layers import (
    ConvNormAct,
    FeaturesThenHead,
    Sequential,
    StochasticDepth,
    conv,
    make_head,
)

# name -> (width multiplier, depth multiplier, classifier dropout)
CONFIGS = {
    "efficientnet_b0": (1.0, 1.0, 0.2),
    "efficientnet_b1": (1.0, 1.1, 0.2),
    "efficientnet_b2": (1.1, 1.2, 0.3),
    "efficientnet_b3": (1.2, 1.4, 0.3),
    "efficientnet_b4": (1.4, 1.8, 0.4),
    "efficientnet_b5": (1.6, 2.2, 0.4),
    "efficientnet_b6": (1.8, 2.6, 0.5),
    "efficientnet_b7": (2.0, 3.1, 0.5),
}
# Stages of B0: (expand ratio, kernel, stride, input channels, output channels, layers).
STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
TORCH_HEAD = "classifier.1"
STOCHASTIC_DEPTH = 0.2


def batchnorm_settings(arch: str) -> tuple[float, float]:
    """(momentum kept, epsilon): torchvision uses eps 1e-3 and torch momentum 0.01 for B5-B7."""
    return (
        (0.99, 1e-3)
        if arch in ("efficientnet_b5", "efficientnet_b6", "efficientnet_b7")
        else (
            0.9,
            1e-5,
        )
    )


def round_channels(channels: float, width: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible(channels * width, 8): nearest multiple, never 10% below."""
    v = channels * width
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


class SqueezeExcitation(nnx.Module):
    """torchvision's SqueezeExcitation: per-channel gates from the pooled map. EfficientNet's
    uses SiLU and a sigmoid gate, MobileNet v3's ReLU and a hard sigmoid."""

    def __init__(self, features, squeeze, *, activation=silu, gate=jax.nn.sigmoid, dtype, rngs):
        self.fc1 = conv(features, squeeze, 1, bias=True, dtype=dtype, rngs=rngs)
        self.fc2 = conv(squeeze, features, 1, bias=True, dtype=dtype, rngs=rngs)
        self.activation, self.gate = activation, gate

    def __call__(self, x):
        scale = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(x.dtype)
        scale = self.gate(self.fc2(self.activation(self.fc1(scale))))
        return x * scale


class MBConv(nnx.Module):
    """Inverted residual: expand 1x1 -> depthwise kxk -> squeeze-excite -> project 1x1."""

    def __init__(
        self, expand, kernel, stride, in_features, out_features, drop_rate, *, bn, dtype, rngs
    ):
        momentum, epsilon = bn
        expanded = round_channels(in_features, expand)
        kw = dict(bn_momentum=momentum, bn_epsilon=epsilon, dtype=dtype, rngs=rngs)
        layers = []
        if expanded != in_features:
            layers.append(ConvNormAct(in_features, expanded, 1, **kw))
        layers.append(ConvNormAct(expanded, expanded, kernel, stride=stride, groups=expanded, **kw))
        layers.append(SqueezeExcitation(expanded, max(1, in_features // 4), dtype=dtype, rngs=rngs))
        layers.append(ConvNormAct(expanded, out_features, 1, activation=None, **kw))
        self.block = Sequential(*layers)
        self.residual = stride == 1 and in_features == out_features
        self.stochastic_depth = StochasticDepth(drop_rate, rngs=rngs)

    def __call__(self, x):
        y = self.block(x)
        return x + self.stochastic_depth(y) if self.residual else y


class EfficientNet(FeaturesThenHead, nnx.Module):
    """``[B, H, W, 3]`` normalised images (or ``[B, H, W, 1]`` grey) -> ``[B, num_outputs]``
    logits (float32).

    ``stochastic_depth`` is the largest per-block drop rate (torchvision's 0.2), scaled linearly
    with block depth; it is active in train mode only. ``dropout`` defaults to the variant's
    classifier dropout.
    """

    def __init__(
        self,
        arch: str,
        *,
        num_outputs: int = 1000,
        head: str = "linear",
        dropout: float | None = None,
        stochastic_depth: float = STOCHASTIC_DEPTH,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        width, depth, default_dropout = CONFIGS[arch]
        self.arch = arch
        bn = batchnorm_settings(arch)
        stem = round_channels(STAGES[0][3], width)
        layers = [
            ConvNormAct(
                3, stem, 3, stride=2, bn_momentum=bn[0], bn_epsilon=bn[1], dtype=dtype, rngs=rngs
            )
        ]
        repeats = [math.ceil(n * depth) for *_, n in STAGES]
        total, block_id = sum(repeats), 0
        for (expand, kernel, stride, c_in, c_out, _), n in zip(STAGES, repeats, strict=True):
            c_in, c_out = round_channels(c_in, width), round_channels(c_out, width)
            blocks = []
            for i in range(n):
                drop = stochastic_depth * block_id / total
                blocks.append(
                    MBConv(
                        expand,
                        kernel,
                        stride if i == 0 else 1,
                        c_in if i == 0 else c_out,
                        c_out,
                        drop,
                        bn=bn,
                        dtype=dtype,
                        rngs=rngs,
                    )
                )
                block_id += 1
            layers.append(Sequential(*blocks))
        last_in = round_channels(STAGES[-1][4], width)
        self.num_features = 4 * last_in
        layers.append(
            ConvNormAct(
                last_in,
                self.num_features,
                1,
                bn_momentum=bn[0],
                bn_epsilon=bn[1],
                dtype=dtype,
                rngs=rngs,
            )
        )
        self.features = Sequential(*layers)
        self.head = make_head(
            head,
            self.num_features,
            num_outputs,
            dropout=default_dropout if dropout is None else dropout,
            dtype=dtype,
            rngs=rngs,
        )
