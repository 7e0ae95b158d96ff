"""ReLU and SiLU as every jcxr model calls them, with guided backpropagation on request.

Inside :func:`guided` (Springenberg et al. 2015) their backward pass lets a gradient through
only where both the unit's input and the incoming gradient are positive; outside it they are
``jax.nn.relu`` and ``jax.nn.silu``. The switch is a context variable read while tracing, so a
guided function must be traced inside the block (as :func:`jcxr.explain.guided_backprop`
does). For SiLU, which has no "off" side, the guided rule keeps SiLU's own derivative where it
lets the gradient through.
"""

from __future__ import annotations

import contextlib
import contextvars

import jax
import jax.numpy as jnp

_GUIDED = contextvars.ContextVar("jcxr_guided_backprop", default=False)


@contextlib.contextmanager
def guided():
    token = _GUIDED.set(True)
    try:
        yield
    finally:
        _GUIDED.reset(token)


@jax.custom_vjp
def _guided_relu(x):
    return jax.nn.relu(x)


def _relu_forward(x):
    return jax.nn.relu(x), x


def _relu_backward(x, g):
    return (jnp.where((x > 0) & (g > 0), g, jnp.zeros_like(g)),)


_guided_relu.defvjp(_relu_forward, _relu_backward)


@jax.custom_vjp
def _guided_silu(x):
    return jax.nn.silu(x)


def _silu_forward(x):
    return jax.nn.silu(x), x


def _silu_backward(x, g):
    slope = jax.grad(lambda v: jnp.sum(jax.nn.silu(v)))(x)
    return (jnp.where((x > 0) & (g > 0), g * slope, jnp.zeros_like(g)),)


_guided_silu.defvjp(_silu_forward, _silu_backward)


def relu(x):
    return _guided_relu(x) if _GUIDED.get() else jax.nn.relu(x)


def silu(x):
    return _guided_silu(x) if _GUIDED.get() else jax.nn.silu(x)
