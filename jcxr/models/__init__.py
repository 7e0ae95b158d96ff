"""jcxr.models: Flax NNX ResNet, DenseNet, EfficientNet, MobileNet v2/v3 and InceptionV3 that
load torchvision's weights exactly, and Xception loading timm's (``legacy_xception``).

Input ``[B, H, W, 3]`` float, normalised as torchvision expects (ImageNet mean/std,
:func:`normalise`), or ``[B, H, W, 1]`` grey in [0, 1] (:func:`grey`: the same logits, with a
first convolution over one channel, ``jcxr/models/inputs.py``); any square size from 32 px up
(InceptionV3: 75 px, :func:`min_size`); output ``[B, num_outputs]`` float32 logits (higher =
positive).
Call ``model.eval()`` for inference (running BatchNorm statistics, no dropout) and
``model.train()`` for training.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import jax.numpy as jnp
from flax import nnx

from jcxr.models import densenet, efficientnet, inception, mobilenet, resnet, xception
from jcxr.models.inputs import IMAGENET_MEAN, IMAGENET_STD, grey, normalise
from jcxr.models.layers import HEADS
from jcxr.models.weights import WeightsMismatchError, load_into, read_state_dict

_FAMILIES = {
    **{name: resnet for name in resnet.CONFIGS},
    **{name: densenet for name in densenet.CONFIGS},
    **{name: efficientnet for name in efficientnet.CONFIGS},
    **{name: mobilenet for name in mobilenet.CONFIGS},
    **{name: inception for name in inception.CONFIGS},
    **{name: xception for name in xception.CONFIGS},
}
IMAGENET_CLASSES = 1000

__all__ = [
    "HEADS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WeightsMismatchError",
    "create",
    "from_torchvision",
    "grey",
    "list_archs",
    "min_size",
    "normalise",
    "torch_head",
]


def list_archs(*, torchvision_only: bool = False) -> list[str]:
    """Every architecture name ``create`` accepts; with ``torchvision_only`` just those that
    have ImageNet weights to port (torchvision's, and timm's for ``xception``), i.e. all but
    ``resnet_tiny``."""
    return [a for a in _FAMILIES if not (torchvision_only and a in resnet.NOT_TORCHVISION)]


def min_size(arch: str) -> int:
    """Smallest square input ``arch`` takes, in px (32, or InceptionV3's 75)."""
    return getattr(_family(arch), "MIN_SIZE", 32)


def torch_head(arch: str) -> str:
    """Key prefix of torchvision's ImageNet classifier for ``arch`` (e.g. ``"fc"``)."""
    family = _family(arch)
    return getattr(family, "TORCH_HEADS", {}).get(arch, family.TORCH_HEAD)


def create(
    arch: str,
    *,
    num_outputs: int = 1,
    head: str = "linear",
    dropout: float = 0.0,
    dtype=jnp.float32,
    pretrained: Mapping | str | Path | None = None,
    remat: bool = False,
    stochastic_depth: float | None = None,
    rngs: nnx.Rngs | None = None,
) -> nnx.Module:
    """Build ``arch`` with a fresh head of ``num_outputs`` logits.

    Args:
      arch: one of :func:`list_archs`.
      head: ``"linear"`` (average pool + dense), ``"concat_pool"`` (fastai: concat(avg, max) ->
        BN -> dropout -> dense(512) -> ReLU -> BN -> dropout -> dense) or ``"mlp"`` (3 dense
        layers, ReLU and dropout between); ``"imagenet"`` is the architecture's own classifier
        (what :func:`from_torchvision` builds, two dense layers for MobileNet v3).
      dropout: head dropout rate.
      dtype: compute dtype (``jnp.bfloat16`` for mixed precision); parameters and BatchNorm
        statistics stay float32.
      pretrained: torchvision weights for the backbone (state dict, ``.pth``, ``.safetensors``,
        ``.npz`` or a ``port`` directory); the head stays freshly initialised.
      remat: DenseNet only: rematerialise each dense layer (less memory, same gradients).
      stochastic_depth: EfficientNet only: largest block drop rate (default torchvision's 0.2).
      rngs: parameter and dropout randomness (default ``nnx.Rngs(0)``).
    """
    family = _family(arch)
    if head not in (*HEADS, "imagenet"):
        raise ValueError(f"head must be one of {HEADS}; got {head!r}")
    if num_outputs < 1:
        raise ValueError(f"num_outputs must be >= 1; got {num_outputs}")
    kwargs = dict(num_outputs=num_outputs, head=head, dropout=dropout, dtype=dtype)
    if remat:
        if family is not densenet:
            raise ValueError(f"remat is a DenseNet option; {arch} has no dense layers")
        kwargs["remat"] = True
    if stochastic_depth is not None:
        if family is not efficientnet:
            raise ValueError(f"stochastic_depth is an EfficientNet option, not {arch}'s")
        kwargs["stochastic_depth"] = stochastic_depth
    model = _build(family, arch, rngs or nnx.Rngs(0), kwargs)
    if pretrained is not None:
        load_into(model, read_state_dict(pretrained), torch_head(arch), include_head=False,
                  ignore=getattr(family, "IGNORED", ()))  # fmt: skip
    return model


def from_torchvision(
    arch: str,
    state_dict: Mapping | str | Path,
    *,
    dtype=jnp.float32,
    stochastic_depth: float | None = None,
) -> nnx.Module:
    """The full ImageNet classifier (1000 logits) with torchvision's weights, head included.

    ``model.eval(); model(x_nhwc)`` equals torchvision's ``model.eval()(x_nchw)``.
    """
    family = _family(arch)
    kwargs = dict(num_outputs=IMAGENET_CLASSES, head="imagenet", dtype=dtype)
    if family in (mobilenet, inception):
        kwargs["dropout"] = family.DROPOUT
    if family is efficientnet:
        kwargs["dropout"] = efficientnet.CONFIGS[arch][2]
        if stochastic_depth is not None:
            kwargs["stochastic_depth"] = stochastic_depth
    model = _build(family, arch, nnx.Rngs(0), kwargs)
    load_into(model, read_state_dict(state_dict), torch_head(arch), include_head=True,
              ignore=getattr(family, "IGNORED", ()))  # fmt: skip
    return model


def _build(family, arch, rngs, kwargs):
    cls = {
        resnet: resnet.ResNet,
        densenet: densenet.DenseNet,
        efficientnet: efficientnet.EfficientNet,
        inception: inception.InceptionV3,
        xception: xception.Xception,
    }
    if family is mobilenet:
        return (mobilenet.MobileNetV2 if arch == "mobilenet_v2" else mobilenet.MobileNetV3)(
            arch, rngs=rngs, **kwargs
        )
    return cls[family](arch, rngs=rngs, **kwargs)


def _family(arch: str):
    if arch not in _FAMILIES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {list_archs()}")
    return _FAMILIES[arch]
