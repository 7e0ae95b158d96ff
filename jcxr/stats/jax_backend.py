"""JAX backend of jcxr.stats: the DeLong moments, jit-compiled and vmap-able over label tasks.

Same algorithm and counting units as :func:`jcxr.stats.delong.delong_moments`, with class masks
instead of boolean indexing so that tasks with different numbers of positives share one compiled
function. Computes in float64: call it with x64 enabled (``jax.enable_x64(True)`` or the
``jax_enable_x64`` config flag); :func:`delong_moments_float64` does that for you.

Example, many labels at once::

    with jax.enable_x64(True):
        auc, cov, diff_var = jax.vmap(delong_moments)(positive, scores)  # [T, N], [T, K, N]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


@jax.jit
def delong_moments(positive: jax.Array, scores: jax.Array):
    """AUCs ``(K,)``, DeLong covariance ``(K, K)`` and pairwise difference variances ``(K, K)``.

    Args:
      positive: ``(N,)`` bool; at least 2 positives and 2 negatives (not checked here: validate
        on the host with :func:`jcxr.stats.delong`'s rules).
      scores: ``(K, N)`` float64, finite, higher = positive.
    """
    if scores.dtype != jnp.float64:
        raise ValueError(
            f"jcxr.stats' JAX backend needs float64 scores, got {scores.dtype}: enable x64 "
            "(`with jax.enable_x64(True):` or jax.config.update('jax_enable_x64', True))"
        )
    k, n_cases = scores.shape
    positive = positive.astype(bool)
    m = positive.sum().astype(jnp.float64)
    n = n_cases - m

    order = jnp.argsort(scores, axis=1)
    ranked = jnp.take_along_axis(scores, order, axis=1)
    is_neg = ~positive[order]
    index = jnp.arange(n_cases)
    edge = jnp.ones((k, 1), dtype=bool)
    starts = jnp.concatenate([edge, ranked[:, 1:] != ranked[:, :-1]], axis=1)
    ends = jnp.concatenate([starts[:, 1:], edge], axis=1)
    first = lax.cummax(jnp.where(starts, index, 0), axis=1)
    last = lax.cummin(jnp.where(ends, index, n_cases - 1), axis=1, reverse=True)
    neg_through = jnp.cumsum(is_neg, axis=1, dtype=jnp.int64)
    neg_before_group = jnp.take_along_axis(neg_through - is_neg, first, axis=1)
    neg_through_group = jnp.take_along_axis(neg_through, last, axis=1)
    neg_below = 0.5 * (neg_before_group + neg_through_group)
    pos_above = m - 0.5 * ((first - neg_before_group) + (last + 1 - neg_through_group))
    placed_sorted = jnp.where(is_neg, pos_above, neg_below)
    placed = jnp.zeros_like(placed_sorted).at[jnp.arange(k)[:, None], order].set(placed_sorted)

    pos_w = positive.astype(jnp.float64)
    neg_w = 1.0 - pos_w
    auc = (placed * pos_w).sum(axis=1) / (m * n)
    cov = _masked_cov(placed, pos_w, m) / (n * n * m) + _masked_cov(placed, neg_w, n) / (m * m * n)
    diff = placed[:, None, :] - placed[None, :, :]
    diff_var = _masked_var(diff, pos_w, m) / (n * n * m) + _masked_var(diff, neg_w, n) / (m * m * n)
    return auc, cov, diff_var


def delong_moments_float64(positive: np.ndarray, scores: np.ndarray):
    """Host wrapper: runs :func:`delong_moments` with x64 enabled and returns numpy arrays."""
    with jax.enable_x64(True):
        auc, cov, diff_var = delong_moments(
            jnp.asarray(positive, dtype=bool), jnp.asarray(scores, dtype=jnp.float64)
        )
        return np.asarray(auc), np.asarray(cov), np.asarray(diff_var)


def _masked_cov(x, weight, count):
    centred = (x - (x * weight).sum(axis=-1, keepdims=True) / count) * weight
    return centred @ centred.T / (count - 1)


def _masked_var(x, weight, count):
    centred = (x - (x * weight).sum(axis=-1, keepdims=True) / count) * weight
    return (centred * centred).sum(axis=-1) / (count - 1)
