"""Xception (Chollet 2017), as timm's ``legacy_xception`` builds it: the Keras model
Cardona Cardenas et al. 2020 trained, with its ImageNet weights ported from Keras by timm.

torchvision has no Xception; ``from_torchvision`` and ``create(pretrained=...)`` take timm's
state dict (same key names, torch layout). The Keras weights expect pixels normalised with mean
0.5 and std 0.5; the model converts jcxr's ImageNet-normalised input to that inside, so one
normalisation serves every architecture (a grey input gets it folded into the first
convolution, ``jcxr/models/inputs.py``). 299 px is the native size.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from flax import nnx

from jcxr.models.activations import relu
from jcxr.models.batchnorm import BatchNorm
from jcxr.models.inputs import half_input_conv
from jcxr.models.layers import (
    FeaturesThenHead,
    Sequential,
    conv,
    make_head,
    run_stages,
)
from jcxr.models.pooling import max_pool

CONFIGS = {"xception": "legacy_xception"}  # jcxr name -> timm name
TORCH_HEAD = "fc"
# (input channels, output channels, separable convolutions, stride, start with ReLU, grow first)
BLOCKS = ((64, 128, 2, 2, False, True), (128, 256, 2, 2, True, True),
          (256, 728, 2, 2, True, True), *[(728, 728, 3, 1, True, True)] * 8,
          (728, 1024, 2, 2, True, False))  # fmt: skip


class SeparableConv2d(nnx.Module):
    """Depthwise k x k (``conv1``) then pointwise 1 x 1, neither with a bias."""

    def __init__(self, in_features, out_features, *, dtype, rngs):
        self.conv1 = conv(in_features, in_features, 3, groups=in_features, dtype=dtype, rngs=rngs)
        self.pointwise = conv(in_features, out_features, 1, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.pointwise(self.conv1(x))


class Block(nnx.Module):
    """``rep``: [ReLU, separable conv, BatchNorm] x reps (the first ReLU dropped unless
    ``start_with_relu``), then a 3 x 3 max pool when strided; plus the input, through a strided
    1 x 1 conv and BatchNorm (``skip``, ``skipbn``) where the shape changes."""

    def __init__(self, c_in, c_out, reps, stride, start_with_relu, grow_first, *, dtype, rngs):
        kw = dict(dtype=dtype, rngs=rngs)
        if c_out != c_in or stride != 1:
            self.skip = conv(c_in, c_out, 1, stride=stride, **kw)
            self.skipbn = BatchNorm(c_out, dtype=dtype)
        else:
            self.skip = None
        rep = []
        for i in range(reps):
            if grow_first:
                a, b = (c_in if i == 0 else c_out), c_out
            else:
                a, b = c_in, (c_in if i < reps - 1 else c_out)
            rep += [relu, SeparableConv2d(a, b, **kw), BatchNorm(b, dtype=dtype)]
        if not start_with_relu:
            rep = rep[1:]
        if stride != 1:
            rep.append(_downsample)
        self.rep = Sequential(*rep)

    def __call__(self, x):
        skip = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + skip


def _downsample(x):
    """A strided block's last step: 3 x 3 max pool, stride 2, padding 1."""
    return max_pool(x, 3, 2, 1)


class Xception(FeaturesThenHead, nnx.Module):
    """``[B, H, W, 3]`` ImageNet-normalised images (or ``[B, H, W, 1]`` grey) ->
    ``[B, num_outputs]`` logits (float32)."""

    def __init__(self, arch: str, *, num_outputs: int = 1000, head: str = "linear",
                 dropout: float = 0.0, dtype=jnp.float32, rngs: nnx.Rngs):  # fmt: skip
        self.arch = arch
        kw = dict(dtype=dtype, rngs=rngs)
        self.conv1 = conv(3, 32, 3, stride=2, padding=0, **kw)
        self.bn1 = BatchNorm(32, dtype=dtype)
        self.conv2 = conv(32, 64, 3, padding=0, **kw)
        self.bn2 = BatchNorm(64, dtype=dtype)
        for i, (c_in, c_out, reps, stride, start, grow) in enumerate(BLOCKS, 1):
            setattr(self, f"block{i}", Block(c_in, c_out, reps, stride, start, grow, **kw))
        self.conv3 = SeparableConv2d(1024, 1536, **kw)
        self.bn3 = BatchNorm(1536, dtype=dtype)
        self.num_features = 2048
        self.conv4 = SeparableConv2d(1536, self.num_features, **kw)
        self.bn4 = BatchNorm(self.num_features, dtype=dtype)
        self.head = make_head(head, self.num_features, num_outputs, dropout=dropout, **kw)

    def stages(self) -> list[tuple[str, Callable]]:
        """timm's module names in forward order: ``act2`` (the stem's output, after the input
        conversion), ``block1`` ... ``block12``, ``act3``, ``act4``."""
        blocks = [(f"block{i}", getattr(self, f"block{i}")) for i in range(1, len(BLOCKS) + 1)]
        return [("act2", self.stem), *blocks, ("act3", self.exit3), ("act4", self.exit4)]

    def stem(self, x):
        x = relu(self.bn1(half_input_conv(self.conv1, x)))
        return relu(self.bn2(self.conv2(x)))

    def exit3(self, x):
        return relu(self.bn3(self.conv3(x)))

    def exit4(self, x):
        return relu(self.bn4(self.conv4(x)))

    def feature_map(self, x):
        """``[B, H, W, 3] -> [B, h, w, 2048]`` before pooling (10 x 10 at 299 px)."""
        return run_stages(self.stages(), x)
