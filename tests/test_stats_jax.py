"""The JAX backend of jcxr.stats gives the numpy numbers, jit-compiled and vmapped over tasks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcxr.stats import delong, delong_moments
from jcxr.stats.jax_backend import delong_moments as jax_moments


def make_task(rng, n_cases, k):
    y = rng.integers(0, 2, n_cases).astype(bool)
    y[:2], y[2:4] = True, False
    scores = np.round(y + rng.normal(scale=rng.uniform(0.5, 2, (k, 1)), size=(k, n_cases)), 1)
    return y, scores


def test_backend_matches_numpy_to_1e12():
    y, scores = make_task(np.random.default_rng(0), 700, 5)
    scores[3] = scores[1]  # an identical pair: zero difference variance in both backends
    a = delong(y, scores, backend="numpy")
    b = delong(y, scores, backend="jax")
    for field in ("auc", "cov", "se", "z", "p", "p_adjusted", "diff_ci"):
        np.testing.assert_allclose(getattr(b, field), getattr(a, field), rtol=1e-12, atol=1e-12)
    assert b.z[1, 3] == 0.0 and b.p[1, 3] == 1.0


def test_vmap_over_label_tasks_matches_per_task_numpy():
    rng = np.random.default_rng(1)
    tasks = [make_task(rng, 300, 3) for _ in range(4)]  # different positive counts per task
    y = np.stack([t[0] for t in tasks])
    scores = np.stack([t[1] for t in tasks])
    with jax.enable_x64(True):
        auc, cov, diff_var = jax.vmap(jax_moments)(jnp.asarray(y), jnp.asarray(scores))
    for t, (y_t, s_t) in enumerate(tasks):
        ref_auc, ref_cov, ref_diff_var = delong_moments(y_t, s_t)
        np.testing.assert_allclose(auc[t], ref_auc, atol=1e-12)
        np.testing.assert_allclose(cov[t], ref_cov, atol=1e-12)
        np.testing.assert_allclose(diff_var[t], ref_diff_var, atol=1e-12)


def test_backend_refuses_float32():
    y, scores = make_task(np.random.default_rng(2), 50, 2)
    with jax.enable_x64(False), pytest.raises(ValueError, match="float64"):
        jax_moments(jnp.asarray(y), jnp.asarray(scores, dtype=jnp.float32))
