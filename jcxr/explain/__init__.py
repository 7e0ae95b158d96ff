"""Where the network looks: class activation maps, and how well they hit the boxes.

Maps (every architecture jcxr builds, NHWC, batched, jit-compiled by the caller's ``jax.jit``
or eagerly):

* :func:`grad_cam` (Selvaraju et al. 2017): the activations of a layer, each channel weighted
  by the spatial mean of the output's gradient with respect to it, summed over channels, ReLU.
  Any of the model's named stages (:func:`layers`: torchvision's module names, e.g.
  ``layer3`` of a ResNet, ``features.denseblock3`` of a DenseNet, ``features.5`` of an
  EfficientNet); the default is the last, the feature map the head pools. An earlier stage
  maps finer (a ResNet's ``layer3`` is twice as fine as ``layer4``), which matters at low
  resolution: at 64 px a ResNet's last stage is 2 x 2.
* :func:`grad_cam_plus_plus` (Chattopadhay et al. 2018): the channel weights are
  ``sum(alpha * relu(g))`` with ``alpha = g^2 / (2 g^2 + sum(A) g^3)``, ``g`` the logit's
  gradient: the paper's closed form for an exponential output, whose positive factor
  ``exp(logit)`` scales a map without changing its shape (dropped, as pytorch-grad-cam does).
* :func:`cam` (Zhou et al. 2016): for global-average-pooled linear heads, the head's weights
  applied to the feature map (the last stage only, by definition).
* :func:`guided_backprop` (Springenberg et al. 2015): the output's gradient with respect to
  the input pixels, every ReLU (and SiLU) passing back only positive gradients where its input
  was positive (:mod:`jcxr.models.activations`).

Maps come back at the feature map's size and are brought to the input resolution by
:func:`upsample` (bilinear, ``jax.image.resize``, half-pixel centres as in PIL/OpenCV). The
localisation scores against boxes are in :mod:`jcxr.explain.metrics`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jcxr.models import activations
from jcxr.models.layers import LinearHead, run_stages

__all__ = ["MAPS", "cam", "grad_cam", "grad_cam_plus_plus", "guided_backprop", "layer_names",
           "layers", "upsample"]  # fmt: skip


def layers(model) -> list[str]:
    """The layers a map can be taken at, input to output; the last is the default."""
    return [name for name, _ in model.stages()]


def layer_names(arch: str) -> list[str]:
    """:func:`layers` of ``arch`` without building its weights (for checking a config)."""
    from flax import nnx

    from jcxr import models

    return layers(nnx.eval_shape(lambda: models.create(arch)))


def _feature_gradients(model, images, output: int, layer: str | None):
    """(activations ``[B, h, w, C]`` at ``layer``, d logit_output / d activations)."""
    stages = model.stages()
    names = [name for name, _ in stages]
    if layer is not None and layer not in names:
        raise ValueError(f"{model.arch} has no layer {layer!r}; choose one of {names}")
    cut = names.index(layer) + 1 if layer is not None else len(stages)
    features = run_stages(stages[:cut], images)

    def logit(features):
        return jnp.sum(
            model.head(run_stages(stages[cut:], features)).astype(jnp.float32)[:, output]
        )

    grads = jax.grad(logit)(features)
    return features.astype(jnp.float32), grads.astype(jnp.float32)


def grad_cam(model, images, output: int = 0, layer: str | None = None):
    """Grad-CAM maps ``[B, h, w]`` of logit ``output`` at ``layer`` (default the last stage) for
    NHWC ``images`` (normalised as the model expects), in eval mode (``model.eval()`` first)."""
    features, grads = _feature_gradients(model, images, output, layer)
    weights = jnp.mean(grads, axis=(1, 2))  # [B, C]
    return jax.nn.relu(jnp.einsum("bhwc,bc->bhw", features, weights))


def grad_cam_plus_plus(model, images, output: int = 0, layer: str | None = None):
    """Grad-CAM++ maps ``[B, h, w]`` (the exponential-output closed form)."""
    features, grads = _feature_gradients(model, images, output, layer)
    g2, g3 = jnp.square(grads), grads**3
    total = jnp.sum(features, axis=(1, 2), keepdims=True)
    alpha = jnp.where(grads != 0.0, g2 / (2.0 * g2 + total * g3 + 1e-6), 0.0)
    weights = jnp.sum(alpha * jax.nn.relu(grads), axis=(1, 2))  # [B, C]
    return jax.nn.relu(jnp.einsum("bhwc,bc->bhw", features, weights))


def cam(model, images, output: int = 0, layer: str | None = None):
    """Class activation maps ``[B, h, w]``: the linear head's weights for ``output`` applied to
    the feature map (defined for ``head="linear"``, global average pool then one dense layer;
    the bias shifts every position alike and is left out)."""
    if layer not in (None, layers(model)[-1]):
        raise ValueError(f"CAM is defined at the last stage, {layers(model)[-1]!r}; got {layer!r}")
    if not isinstance(model.head, LinearHead):
        raise ValueError(
            f"CAM needs a global-average-pooled linear head (head='linear'); this model's head "
            f"is {type(model.head).__name__}: use grad_cam"
        )
    features = model.feature_map(images).astype(jnp.float32)
    kernel = model.head.dense.kernel[...][:, output].astype(jnp.float32)
    return jnp.einsum("bhwc,c->bhw", features, kernel)


def upsample(maps, size: int):
    """Maps ``[B, h, w]`` to ``[B, size, size]`` by bilinear interpolation."""
    return jax.image.resize(maps, (maps.shape[0], size, size), method="bilinear")


def guided_backprop(model, images, output: int = 0):
    """Guided backpropagation ``[B, H, W, 3]``: d logit_output / d images under the guided
    ReLU rule (traced here, inside the guided block)."""
    with activations.guided():
        return jax.grad(lambda x: jnp.sum(model(x).astype(jnp.float32)[:, output]))(images)


# the class activation maps by name (config.eval.localise_method, python -m jcxr.explain)
MAPS = {"grad_cam": grad_cam, "grad_cam_plus_plus": grad_cam_plus_plus, "cam": cam}
