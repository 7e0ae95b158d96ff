"""InceptionV3 (Szegedy et al. 2016), as torchvision builds it with its ImageNet weights.

Two choices follow torchvision's pretrained model and Cardona Cardenas et al. 2020's Keras one:

- The input is converted from ImageNet normalisation to the mean 0.5 / std 0.5 the Google
  weights expect (torchvision's ``transform_input=True``), so jcxr's one normalisation serves.
- The auxiliary classifier (``AuxLogits``, on ``Mixed_6e``) is not built: at evaluation it is
  unused, and Keras' ``include_top=False`` model the study trained has none. Its tensors in a
  torchvision state dict are skipped when loading.

The smallest input is 75 px (torchvision's ``min_size``); 299 px is the native size.
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
    conv,
    make_head,
    run_stages,
)
from jcxr.models.pooling import avg_pool_same, max_pool

CONFIGS = {"inception_v3": None}
TORCH_HEAD = "fc"
IGNORED = ("AuxLogits.",)
DROPOUT = 0.5
MIN_SIZE = 75


class BasicConv2d(nnx.Module):
    """conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, in_features, out_features, kernel, *, stride=1, padding=0, dtype, rngs):
        self.conv = conv(in_features, out_features, kernel, stride=stride, padding=padding,
                         dtype=dtype, rngs=rngs)  # fmt: skip
        self.bn = BatchNorm(out_features, epsilon=1e-3, dtype=dtype)

    def __call__(self, x):
        return relu(self.bn(self.conv(x)))


def _branches(module, x, branches: list[list[str]], pool: Callable) -> jnp.ndarray:
    """Concatenate, along channels, each branch's children applied in turn; ``pool`` gives the
    last branch's input from ``x``. A branch name ending in ``a|b`` splits into two heads."""
    outputs = []
    for names in branches:
        y = pool(x) if names is branches[-1] else x
        for name in names:
            if "|" in name:
                y = jnp.concatenate([getattr(module, n)(y) for n in name.split("|")], -1)
            else:
                y = getattr(module, name)(y)
        outputs.append(y)
    return jnp.concatenate(outputs, -1)


class InceptionA(nnx.Module):
    def __init__(self, c_in, pool_features, *, dtype, rngs):
        kw = dict(dtype=dtype, rngs=rngs)
        self.branch1x1 = BasicConv2d(c_in, 64, 1, **kw)
        self.branch5x5_1 = BasicConv2d(c_in, 48, 1, **kw)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2, **kw)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1, **kw)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1, **kw)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1, **kw)
        self.branch_pool = BasicConv2d(c_in, pool_features, 1, **kw)

    def __call__(self, x):
        return _branches(self, x, [["branch1x1"], ["branch5x5_1", "branch5x5_2"],
                                   ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
                                   ["branch_pool"]], avg_pool_same)  # fmt: skip


class InceptionB(nnx.Module):
    def __init__(self, c_in, *, dtype, rngs):
        kw = dict(dtype=dtype, rngs=rngs)
        self.branch3x3 = BasicConv2d(c_in, 384, 3, stride=2, **kw)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1, **kw)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1, **kw)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2, **kw)

    def __call__(self, x):
        return _branches(self, x, [["branch3x3"],
                                   ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], []],
                         _reduce)  # fmt: skip


class InceptionC(nnx.Module):
    def __init__(self, c_in, c7, *, dtype, rngs):
        kw = dict(dtype=dtype, rngs=rngs)
        row, col = dict(padding=(0, 3)), dict(padding=(3, 0))
        self.branch1x1 = BasicConv2d(c_in, 192, 1, **kw)
        self.branch7x7_1 = BasicConv2d(c_in, c7, 1, **kw)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), **row, **kw)
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), **col, **kw)
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, 1, **kw)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), **col, **kw)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), **row, **kw)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), **col, **kw)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), **row, **kw)
        self.branch_pool = BasicConv2d(c_in, 192, 1, **kw)

    def __call__(self, x):
        double = [f"branch7x7dbl_{i}" for i in range(1, 6)]
        return _branches(self, x, [["branch1x1"], ["branch7x7_1", "branch7x7_2", "branch7x7_3"],
                                   double, ["branch_pool"]], avg_pool_same)  # fmt: skip


class InceptionD(nnx.Module):
    def __init__(self, c_in, *, dtype, rngs):
        kw = dict(dtype=dtype, rngs=rngs)
        self.branch3x3_1 = BasicConv2d(c_in, 192, 1, **kw)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2, **kw)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, 1, **kw)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3), **kw)
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0), **kw)
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2, **kw)

    def __call__(self, x):
        return _branches(self, x, [["branch3x3_1", "branch3x3_2"],
                                   [f"branch7x7x3_{i}" for i in range(1, 5)], []],
                         _reduce)  # fmt: skip


class InceptionE(nnx.Module):
    def __init__(self, c_in, *, dtype, rngs):
        kw = dict(dtype=dtype, rngs=rngs)
        self.branch1x1 = BasicConv2d(c_in, 320, 1, **kw)
        self.branch3x3_1 = BasicConv2d(c_in, 384, 1, **kw)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1), **kw)
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0), **kw)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, 1, **kw)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1, **kw)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1), **kw)
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0), **kw)
        self.branch_pool = BasicConv2d(c_in, 192, 1, **kw)

    def __call__(self, x):
        return _branches(self, x, [["branch1x1"], ["branch3x3_1", "branch3x3_2a|branch3x3_2b"],
                                   ["branch3x3dbl_1", "branch3x3dbl_2",
                                    "branch3x3dbl_3a|branch3x3dbl_3b"],
                                   ["branch_pool"]], avg_pool_same)  # fmt: skip


def _reduce(x):
    """The grid-size reductions' pooling branch: 3 x 3 max pool, stride 2, no padding."""
    return max_pool(x, 3, 2, 0)


class InceptionV3(FeaturesThenHead, nnx.Module):
    """``[B, H, W, 3]`` ImageNet-normalised images (or ``[B, H, W, 1]`` grey; H, W >= 75) ->
    ``[B, num_outputs]`` logits (float32)."""

    def __init__(self, arch: str, *, num_outputs: int = 1000, head: str = "linear",
                 dropout: float = 0.0, dtype=jnp.float32, rngs: nnx.Rngs):  # fmt: skip
        self.arch = arch
        kw = dict(dtype=dtype, rngs=rngs)
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2, **kw)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3, **kw)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1, **kw)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1, **kw)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3, **kw)
        self.Mixed_5b = InceptionA(192, 32, **kw)
        self.Mixed_5c = InceptionA(256, 64, **kw)
        self.Mixed_5d = InceptionA(288, 64, **kw)
        self.Mixed_6a = InceptionB(288, **kw)
        self.Mixed_6b = InceptionC(768, 128, **kw)
        self.Mixed_6c = InceptionC(768, 160, **kw)
        self.Mixed_6d = InceptionC(768, 160, **kw)
        self.Mixed_6e = InceptionC(768, 192, **kw)
        self.Mixed_7a = InceptionD(768, **kw)
        self.Mixed_7b = InceptionE(1280, **kw)
        self.Mixed_7c = InceptionE(2048, **kw)
        self.num_features = 2048
        self.head = make_head(head, self.num_features, num_outputs, dropout=dropout, **kw)

    def stages(self) -> list[tuple[str, Callable]]:
        """torchvision's module names in forward order (the input conversion runs inside the
        first)."""
        names = ["Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                 "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                 "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b",
                 "Mixed_7c"]  # fmt: skip
        steps = [("Conv2d_1a_3x3", self.first)]
        for name in names:
            steps.append((name, _reduce if name.startswith("maxpool") else getattr(self, name)))
        return steps

    def first(self, x):
        first = self.Conv2d_1a_3x3
        return relu(first.bn(half_input_conv(first.conv, x)))

    def feature_map(self, x):
        """``[B, H, W, 3] -> [B, h, w, 2048]`` before pooling (8 x 8 at 299 px)."""
        return run_stages(self.stages(), x)
