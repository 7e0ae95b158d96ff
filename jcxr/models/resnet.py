"""ResNet 18/34/50/101/152 (He et al. 2016, torchvision's v1.5: stride in the 3x3 conv)."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from flax import nnx

from jcxr.models.activations import relu
from jcxr.models.batchnorm import BatchNorm
from jcxr.models.inputs import input_conv
from jcxr.models.layers import Sequential, conv, make_head, run_stages
from jcxr.models.pooling import max_pool

# name -> (block, blocks per stage)
CONFIGS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
    # Not a torchvision model: a narrow ResNet for CPU demos and tests (no ImageNet weights).
    "resnet_tiny": ("basic", (1, 1, 1, 1)),
}
WIDTHS = {"resnet_tiny": (16, 32, 64, 128)}
NOT_TORCHVISION = frozenset(WIDTHS)
TORCH_HEAD = "fc"


class BasicBlock(nnx.Module):
    expansion = 1

    def __init__(self, in_features, width, stride, *, dtype, rngs):
        self.conv1 = conv(in_features, width, 3, stride=stride, dtype=dtype, rngs=rngs)
        self.bn1 = BatchNorm(width, dtype=dtype)
        self.conv2 = conv(width, width, 3, dtype=dtype, rngs=rngs)
        self.bn2 = BatchNorm(width, dtype=dtype)
        self.downsample = _downsample(in_features, width, stride, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        y = relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return relu(y + shortcut)


class Bottleneck(nnx.Module):
    expansion = 4

    def __init__(self, in_features, width, stride, *, dtype, rngs):
        out = width * self.expansion
        self.conv1 = conv(in_features, width, 1, dtype=dtype, rngs=rngs)
        self.bn1 = BatchNorm(width, dtype=dtype)
        self.conv2 = conv(width, width, 3, stride=stride, dtype=dtype, rngs=rngs)
        self.bn2 = BatchNorm(width, dtype=dtype)
        self.conv3 = conv(width, out, 1, dtype=dtype, rngs=rngs)
        self.bn3 = BatchNorm(out, dtype=dtype)
        self.downsample = _downsample(in_features, out, stride, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        y = relu(self.bn1(self.conv1(x)))
        y = relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return relu(y + shortcut)


def _downsample(in_features, out_features, stride, *, dtype, rngs):
    if stride == 1 and in_features == out_features:
        return None
    return Sequential(
        conv(in_features, out_features, 1, stride=stride, padding=0, dtype=dtype, rngs=rngs),
        BatchNorm(out_features, dtype=dtype),
    )


class ResNet(nnx.Module):
    """``[B, H, W, 3]`` normalised images (or ``[B, H, W, 1]`` grey) -> ``[B, num_outputs]``
    logits (float32)."""

    def __init__(
        self,
        arch: str,
        *,
        num_outputs: int = 1000,
        head: str = "linear",
        dropout: float = 0.0,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        block_kind, depths = CONFIGS[arch]
        block = BasicBlock if block_kind == "basic" else Bottleneck
        self.arch = arch
        widths = WIDTHS.get(arch, (64, 128, 256, 512))
        self.conv1 = conv(3, widths[0], 7, stride=2, dtype=dtype, rngs=rngs)
        self.bn1 = BatchNorm(widths[0], dtype=dtype)
        in_features = widths[0]
        for stage, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            blocks = []
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(block(in_features, width, stride, dtype=dtype, rngs=rngs))
                in_features = width * block.expansion
            setattr(self, f"layer{stage + 1}", Sequential(*blocks))
        self.num_features = in_features
        self.head = make_head(
            head, in_features, num_outputs, dropout=dropout, dtype=dtype, rngs=rngs
        )

    def stages(self) -> list[tuple[str, Callable]]:
        """The feature extractor as named steps, torchvision's module names (``maxpool``: the
        stem's output), applied in order by :meth:`feature_map`."""
        layers = [(f"layer{i}", getattr(self, f"layer{i}")) for i in (1, 2, 3, 4)]
        return [("maxpool", self.stem), *layers]

    def stem(self, x):
        return max_pool(relu(self.bn1(input_conv(self.conv1, x))), 3, 2, 1)

    def feature_map(self, x):
        """``[B, H, W, 3] -> [B, H / 32, W / 32, C]`` feature map before pooling."""
        return run_stages(self.stages(), x)

    def __call__(self, x):
        return self.head(self.feature_map(x)).astype(jnp.float32)
