"""MobileNet v2 (Sandler et al. 2018), as torchvision builds it.

Cardona Cardenas et al. 2020 used Keras' MobileNet (v1, Howard et al. 2017), which torchvision
does not ship and which therefore has no ImageNet weights jcxr can port: v2, its successor with
inverted residuals and linear bottlenecks, stands in for it.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jcxr.models.activations import relu6
from jcxr.models.batchnorm import BatchNorm
from jcxr.models.efficientnet import round_channels
from jcxr.models.layers import ConvNormAct, FeaturesThenHead, Sequential, conv, make_head

CONFIGS = {"mobilenet_v2": 1.0}  # name -> width multiplier
# (expand ratio, output channels, blocks, first stride) per stage
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip
STEM, LAST = 32, 1280
DROPOUT = 0.2
TORCH_HEAD = "classifier.1"


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
    """``[B, H, W, 3]`` normalised images -> ``[B, num_outputs]`` logits (float32)."""

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
