"""Batch normalisation with torch.nn.BatchNorm2d's semantics, plus what a resolution study needs:
groups ("ghost" BatchNorm), images left out (padding), and moments for precise statistics."""

from __future__ import annotations

import contextlib
import contextvars
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Array = jax.Array

_IMAGE_WEIGHTS = contextvars.ContextVar("jcxr_batchnorm_image_weights", default=None)


@contextlib.contextmanager
def counted_images(weights: Array):
    """Within this block every training-mode :class:`BatchNorm` counts only the images of
    weight 1 in ``weights`` ``[B]`` (0 = padding, e.g. a study's missing views). A context
    variable, not a module attribute: it is set while tracing, per thread."""
    token = _IMAGE_WEIGHTS.set(weights)
    try:
        yield
    finally:
        _IMAGE_WEIGHTS.reset(token)


class BatchNorm(nnx.Module):
    """Batch normalisation over the channel axis with torch.nn.BatchNorm2d's semantics.

    * ``momentum`` is the fraction of the running average *kept* per update (torch momentum 0.1
      is 0.9 here).
    * Train mode normalises with the biased batch variance but updates the running variance with
      the unbiased one (n / (n - 1)), as torch does.
    * ``group`` (rows of the batch; None = the whole batch): "ghost" batch normalisation (Hoffer
      et al. 2017). Train mode normalises each run of ``group`` consecutive images with its own
      statistics, and the running averages take one update per group, in order. So an
      effective batch gives the same outputs, gradients and running statistics however it is
      cut into microbatches, as long as each microbatch holds whole groups.
    * Inside :func:`counted_images` images of weight 0 (padding, e.g. the missing views of a
      study) are normalised but never counted in the statistics, and a group with no counted
      image leaves the running averages as they were.
    * Statistics and normalisation run in float32 whatever the compute ``dtype``; the output is
      cast back to ``dtype``.
    * ``use_running_average`` is toggled by ``model.eval()`` / ``model.train()``.
    * ``collect_moments``: train mode also sows (``nnx.Intermediate`` "moments") the mean over
      its groups of each group's mean and mean square, ``[2, C]``, for precise statistics
      (:meth:`jcxr.train.step.Steps.recompute_batchnorm`).
    """

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        dtype=jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        del rngs  # deterministic initialisation, as torch
        ones, zeros = np.ones(num_features, np.float32), np.zeros(num_features, np.float32)
        self.scale = nnx.Param(jnp.asarray(ones))  # host arrays: no per-shape compile
        self.bias = nnx.Param(jnp.asarray(zeros))
        self.mean = nnx.BatchStat(jnp.asarray(zeros))
        self.var = nnx.BatchStat(jnp.asarray(ones))
        self.momentum = momentum
        self.epsilon = epsilon
        self.dtype = dtype
        self.use_running_average = False
        self.group: int | None = None
        self.collect_moments = False

    def __call__(self, x: Array) -> Array:
        x32 = x.astype(jnp.float32)
        weights = _IMAGE_WEIGHTS.get()
        if self.use_running_average:
            mean, var = self.mean[...], self.var[...]
        elif weights is None and self.group in (None, x.shape[0]):
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x32, axis=axes)
            var = jnp.mean(jnp.square(x32 - mean), axis=axes)
            self._update(mean[None], var[None], jnp.full(1, x.size // x.shape[-1], jnp.float32))
        else:
            return self._grouped(x32, weights)
        return self._normalise(x32, mean, var).astype(self.dtype)

    def _normalise(self, x32: Array, mean: Array, var: Array) -> Array:
        """``(x - mean) / sqrt(var + eps) * scale + bias`` as ``(x - mean) * a + bias``, with
        ``a = scale / sqrt(var + eps)`` per channel: one multiply-add per element, and XLA:CPU
        runs the layer's forward + backward 1.1-2x faster than with ``rsqrt`` and ``scale``
        applied in turn (docs/benchmarks.md, "jcxr beside PyTorch on this machine, and where the
        time goes"). Not ``x * a + (bias - mean * a)``: that is faster still, but cancels when
        the mean is large against the spread, and a padded study's update then drifted 1.3e-6
        from the unpadded one's."""
        a = jax.lax.rsqrt(var + self.epsilon) * self.scale[...]
        return (x32 - mean) * a + self.bias[...]

    def _grouped(self, x32: Array, weights: Array | None) -> Array:
        """Train mode with groups or image weights: each group normalised by the statistics of
        its counted images."""
        group = self.group or x32.shape[0]
        if x32.shape[0] % group:
            raise ValueError(
                f"BatchNorm group of {group} images: a batch of {x32.shape[0]} is not whole groups"
            )
        groups = x32.reshape(x32.shape[0] // group, group, *x32.shape[1:])
        axes = tuple(range(1, groups.ndim - 1))
        if weights is None:
            mean = jnp.mean(groups, axis=axes, keepdims=True)
            var = jnp.mean(jnp.square(groups - mean), axis=axes, keepdims=True)
            count = jnp.full(groups.shape[0], groups[0].size // groups.shape[-1], jnp.float32)
        else:
            weights = weights.astype(jnp.float32).reshape(
                groups.shape[:2] + (1,) * (groups.ndim - 2)
            )
            count = jnp.sum(weights, axis=1).ravel() * math.prod(groups.shape[2:-1])
            divisor = jnp.maximum(count, 1.0).reshape((-1,) + (1,) * (groups.ndim - 1))
            mean = jnp.sum(weights * groups, axis=axes, keepdims=True) / divisor
            var = jnp.sum(weights * jnp.square(groups - mean), axis=axes, keepdims=True) / divisor
        flat = (groups.shape[0], groups.shape[-1])
        self._update(mean.reshape(flat), var.reshape(flat), count, single=weights is None)
        return self._normalise(groups, mean, var).reshape(x32.shape).astype(self.dtype)

    def _update(self, means: Array, variances: Array, counts: Array, single=True) -> None:
        """One running-average update per row of ``means`` / ``variances`` ``[groups, C]`` that
        counted any value (``counts`` ``[groups]``), in order. Closed form: a counted group's
        weight is (1 - momentum) times momentum once per counted group after it; what is kept
        is momentum ** (counted groups)."""
        kept = self.momentum
        counted = (counts > 0).astype(jnp.float32)
        if self.collect_moments:
            squares = variances + jnp.square(means)
            share = counted / jnp.maximum(counted.sum(), 1.0)
            self.sow(nnx.Intermediate, "moments", jnp.stack([share @ means, share @ squares]))
        unbiased = variances * (counts / jnp.maximum(counts - 1.0, 1.0))[:, None]
        # set_value, not `self.mean[...] = `: flax checks an indexed assignment for a full
        # replace by asking the value for `.sharding`, and on a tracer JAX then builds an error
        # message by walking everything traced so far (2.4 s of DenseNet121's 6.2 s of tracing).
        if means.shape[0] == 1 and single:  # torch's own update
            self.mean.set_value(kept * self.mean[...] + (1.0 - kept) * means[0])
            self.var.set_value(kept * self.var[...] + (1.0 - kept) * unbiased[0])
            return
        after = jnp.cumsum(counted[::-1])[::-1] - counted  # counted groups after each
        weights = counted * (1.0 - kept) * kept**after
        self.mean.set_value(kept ** counted.sum() * self.mean[...] + weights @ means)
        self.var.set_value(kept ** counted.sum() * self.var[...] + weights @ unbiased)
