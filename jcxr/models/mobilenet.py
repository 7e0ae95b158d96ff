"""MobileNet v2 (Sandler et al. 2018) and v3-large (Howard et al. 2019), as torchvision builds
them.

Cardona Cardenas et al. 2020 used Keras' MobileNet (v1, Howard et al. 2017), which torchvision
does not ship and which therefore has no ImageNet weights jcxr can port: v2 and v3, its
successors with inverted residuals and linear bottlenecks, stand in for it.

MobileNet v3's ImageNet classifier is two dense layers (960 -> 1280, hard swish, dropout,
1280 -> 1000) on the pooled features; ``from_torchvision`` builds it, while a jcxr head (like a
Keras ``include_top=False`` model's) sits directly on the 960 pooled features.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jcxr.models.activations import hard_swish, relu, relu6
from jcxr.models.batchnorm import BatchNorm
from jcxr.models.efficientnet import SqueezeExcitation, round_channels
from jcxr.models.layers import (
    ConvNormAct,
    FeaturesThenHead,
    Sequential,
    conv,
    dense,
    make_head,
)
from jcxr.models.pooling import global_avg_pool

CONFIGS = {"mobilenet_v2": 1.0, "mobilenet_v3_large": 1.0}  # name -> width multiplier
# (expand ratio, output channels, blocks, first stride) per stage
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip
STEM, LAST = 32, 1280
DROPOUT = 0.2
TORCH_HEAD = "classifier.1"
TORCH_HEADS = {"mobilenet_v2": "classifier.1", "mobilenet_v3_large": "classifier"}
# MobileNet v3-large: (kernel, expanded, output channels, squeeze-excite, hard swish, stride)
V3_LARGE = ((3, 16, 16, False, False, 1), (3, 64, 24, False, False, 2),
            (3, 72, 24, False, False, 1), (5, 72, 40, True, False, 2),
            (5, 120, 40, True, False, 1), (5, 120, 40, True, False, 1),
            (3, 240, 80, False, True, 2), (3, 200, 80, False, True, 1),
            (3, 184, 80, False, True, 1), (3, 184, 80, False, True, 1),
            (3, 480, 112, True, True, 1), (3, 672, 112, True, True, 1),
            (5, 672, 160, True, True, 2), (5, 960, 160, True, True, 1),
            (5, 960, 160, True, True, 1))  # fmt: skip
V3_STEM, V3_LAST = 16, 1280
V3_BN = dict(bn_momentum=0.99, bn_epsilon=1e-3)  # torch momentum 0.01, eps 0.001


class InvertedResidual(nnx.Module):
    """Expand 1x1 (ReLU6) -> depthwise 3x3 (ReLU6) -> linear 1x1 projection; identity shortcut
    where the shape stays."""

    def __init__(self, in_features, out_features, stride, expand, *, dtype, rngs):
        hidden = round(in_features * expand)
        kw = dict(activation=relu6, dtype=dtype, rngs=rngs)
        layers = [ConvNormAct(in_features, hidden, 1, **kw)] if expand != 1 else []
        layers += [
            ConvNormAct(hidden, hidden, 3, stride=stride, groups=hidden, **kw),
            conv(hidden, out_features, 1, dtype=dtype, rngs=rngs),
            BatchNorm(out_features, dtype=dtype),
        ]
        self.conv = Sequential(*layers)
        self.residual = stride == 1 and in_features == out_features

    def __call__(self, x):
        y = self.conv(x)
        return x + y if self.residual else y


class MobileNetV2(FeaturesThenHead, nnx.Module):
    """``[B, H, W, 3]`` normalised images (or ``[B, H, W, 1]`` grey) -> ``[B, num_outputs]``
    logits (float32)."""

    def __init__(self, arch: str, *, num_outputs: int = 1000, head: str = "linear",
                 dropout: float = DROPOUT, dtype=jnp.float32, rngs: nnx.Rngs):  # fmt: skip
        width = CONFIGS[arch]
        self.arch = arch
        c_in = round_channels(STEM, width)
        layers = [ConvNormAct(3, c_in, 3, stride=2, activation=relu6, dtype=dtype, rngs=rngs)]
        for expand, channels, blocks, stride in SETTINGS:
            c_out = round_channels(channels, width)
            for i in range(blocks):
                layers.append(InvertedResidual(c_in, c_out, stride if i == 0 else 1, expand,
                                               dtype=dtype, rngs=rngs))  # fmt: skip
                c_in = c_out
        self.num_features = round_channels(LAST, max(1.0, width))
        layers.append(ConvNormAct(c_in, self.num_features, 1, activation=relu6, dtype=dtype,
                                  rngs=rngs))  # fmt: skip
        self.features = Sequential(*layers)
        self.head = make_head(head, self.num_features, num_outputs, dropout=dropout, dtype=dtype,
                              rngs=rngs)  # fmt: skip


class InvertedResidualV3(nnx.Module):
    """Expand 1x1 -> depthwise k x k -> optional squeeze-excite (ReLU, hard sigmoid) -> linear
    1x1 projection, ReLU or hard swish between; identity shortcut where the shape stays."""

    def __init__(self, in_features, kernel, expanded, out_features, squeeze, hswish, stride, *,
                 dtype, rngs):  # fmt: skip
        kw = dict(activation=hard_swish if hswish else relu, dtype=dtype, rngs=rngs, **V3_BN)
        layers = [ConvNormAct(in_features, expanded, 1, **kw)] if expanded != in_features else []
        layers.append(ConvNormAct(expanded, expanded, kernel, stride=stride, groups=expanded, **kw))
        if squeeze:
            layers.append(SqueezeExcitation(expanded, round_channels(expanded // 4, 1.0),
                                            activation=relu, gate=jax.nn.hard_sigmoid,
                                            dtype=dtype, rngs=rngs))  # fmt: skip
        layers.append(ConvNormAct(expanded, out_features, 1, **{**kw, "activation": None}))
        self.block = Sequential(*layers)
        self.residual = stride == 1 and in_features == out_features

    def __call__(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class V3Classifier(Sequential):
    """torchvision's ImageNet classifier for MobileNet v3, after average pooling:
    ``classifier.0`` dense, hard swish, dropout, ``classifier.3`` dense."""

    def __init__(self, in_features, num_outputs, *, dropout, dtype, rngs):
        super().__init__(dense(in_features, V3_LAST, dtype=dtype, rngs=rngs), hard_swish,
                         nnx.Dropout(dropout, rngs=rngs),
                         dense(V3_LAST, num_outputs, dtype=dtype, rngs=rngs))  # fmt: skip

    def __call__(self, features):
        return super().__call__(global_avg_pool(features))


class MobileNetV3(FeaturesThenHead, nnx.Module):
    """``[B, H, W, 3]`` normalised images (or ``[B, H, W, 1]`` grey) -> ``[B, num_outputs]``
    logits (float32)."""

    def __init__(self, arch: str, *, num_outputs: int = 1000, head: str = "linear",
                 dropout: float = DROPOUT, dtype=jnp.float32, rngs: nnx.Rngs):  # fmt: skip
        self.arch = arch
        kw = dict(activation=hard_swish, dtype=dtype, rngs=rngs, **V3_BN)
        layers = [ConvNormAct(3, V3_STEM, 3, stride=2, **kw)]
        c_in = V3_STEM
        for kernel, expanded, c_out, squeeze, hswish, stride in V3_LARGE:
            layers.append(InvertedResidualV3(c_in, kernel, expanded, c_out, squeeze, hswish,
                                             stride, dtype=dtype, rngs=rngs))  # fmt: skip
            c_in = c_out
        self.num_features = 6 * c_in
        layers.append(ConvNormAct(c_in, self.num_features, 1, **kw))
        self.features = Sequential(*layers)
        if head == "imagenet":
            self.head = V3Classifier(self.num_features, num_outputs, dropout=dropout,
                                     dtype=dtype, rngs=rngs)  # fmt: skip
        else:
            self.head = make_head(head, self.num_features, num_outputs, dropout=dropout,
                                  dtype=dtype, rngs=rngs)  # fmt: skip
