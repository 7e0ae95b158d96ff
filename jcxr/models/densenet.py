"""DenseNet 121/161/169/201 (Huang et al. 2017), as torchvision builds them."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from flax import nnx

from jcxr.models.activations import relu
from jcxr.models.batchnorm import BatchNorm
from jcxr.models.inputs import input_conv
from jcxr.models.layers import conv, make_head, run_stages
from jcxr.models.pooling import avg_pool, max_pool

# name -> (growth rate, blocks per dense block, initial features)
CONFIGS = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
}
BN_SIZE = 4
TORCH_HEAD = "classifier"


class DenseLayer(nnx.Module):
    """BN-ReLU-conv1x1 (4 x growth) - BN-ReLU-conv3x3 (growth); returns only the new features."""

    def __init__(self, in_features, growth, *, dtype, rngs):
        self.norm1 = BatchNorm(in_features, dtype=dtype)
        self.conv1 = conv(in_features, BN_SIZE * growth, 1, dtype=dtype, rngs=rngs)
        self.norm2 = BatchNorm(BN_SIZE * growth, dtype=dtype)
        self.conv2 = conv(BN_SIZE * growth, growth, 3, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        y = self.conv1(relu(self.norm1(x)))
        return self.conv2(relu(self.norm2(y)))


class DenseBlock(nnx.Module):
    def __init__(self, num_layers, in_features, growth, *, remat, dtype, rngs):
        self.num_layers = num_layers
        self.remat = remat
        for i in range(num_layers):
            layer = DenseLayer(in_features + i * growth, growth, dtype=dtype, rngs=rngs)
            setattr(self, f"denselayer{i + 1}", layer)

    def __call__(self, x):
        for i in range(self.num_layers):
            layer = getattr(self, f"denselayer{i + 1}")
            # Rematerialising trades recomputation for the memory of each layer's intermediates.
            new = nnx.remat(_apply)(layer, x) if self.remat else layer(x)
            x = jnp.concatenate([x, new], axis=-1)
        return x


def _apply(layer, x):
    return layer(x)


class Transition(nnx.Module):
    def __init__(self, in_features, out_features, *, dtype, rngs):
        self.norm = BatchNorm(in_features, dtype=dtype)
        self.conv = conv(in_features, out_features, 1, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return avg_pool(self.conv(relu(self.norm(x))), 2, 2)


class Features(nnx.Module):
    """torchvision's ``features``: conv0, norm0, pool0, dense blocks and transitions, norm5."""

    def __init__(self, arch, *, remat, dtype, rngs):
        growth, depths, init_features = CONFIGS[arch]
        self.conv0 = conv(3, init_features, 7, stride=2, dtype=dtype, rngs=rngs)
        self.norm0 = BatchNorm(init_features, dtype=dtype)
        self.num_blocks = len(depths)
        n = init_features
        for i, depth in enumerate(depths):
            block = DenseBlock(depth, n, growth, remat=remat, dtype=dtype, rngs=rngs)
            setattr(self, f"denseblock{i + 1}", block)
            n += depth * growth
            if i < len(depths) - 1:
                setattr(self, f"transition{i + 1}", Transition(n, n // 2, dtype=dtype, rngs=rngs))
                n //= 2
        self.norm5 = BatchNorm(n, dtype=dtype)
        self.num_features = n

    def stages(self) -> list[tuple[str, Callable]]:
        """Named steps, torchvision's module names under ``features`` (``pool0``: the stem's
        output; ``norm5`` with torchvision's in-place ReLU after it, which its hooks see)."""
        out = [("features.pool0", self.stem)]
        for i in range(1, self.num_blocks + 1):
            out.append((f"features.denseblock{i}", getattr(self, f"denseblock{i}")))
            if i < self.num_blocks:
                out.append((f"features.transition{i}", getattr(self, f"transition{i}")))
        return [*out, ("features.norm5", self.last)]

    def stem(self, x):
        return max_pool(relu(self.norm0(input_conv(self.conv0, x))), 3, 2, 1)

    def last(self, x):
        return relu(self.norm5(x))


class DenseNet(nnx.Module):
    """``[B, H, W, 3]`` normalised images (or ``[B, H, W, 1]`` grey) -> ``[B, num_outputs]``
    logits (float32).

    ``remat=True`` rematerialises every dense layer in the backward pass (``jax.checkpoint``):
    same gradients, much less activation memory at high resolution.
    """

    def __init__(
        self,
        arch: str,
        *,
        num_outputs: int = 1000,
        head: str = "linear",
        dropout: float = 0.0,
        remat: bool = False,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.arch = arch
        self.features = Features(arch, remat=remat, dtype=dtype, rngs=rngs)
        self.num_features = self.features.num_features
        self.head = make_head(
            head, self.num_features, num_outputs, dropout=dropout, dtype=dtype, rngs=rngs
        )

    def stages(self) -> list[tuple[str, Callable]]:
        return self.features.stages()

    def feature_map(self, x):
        """``[B, H, W, 3] -> [B, H / 32, W / 32, C]``; torchvision's ReLU after norm5 included."""
        return run_stages(self.stages(), x)

    def __call__(self, x):
        return self.head(self.feature_map(x)).astype(jnp.float32)
