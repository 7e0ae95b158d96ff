"""ReLU, ReLU6, SiLU and hard swish as every jcxr model calls them, with guided
backpropagation on request.

Inside :func:`guided` (Springenberg et al. 2015) their backward pass lets a gradient through
only where both the unit's input and the incoming gradient are positive; outside it they are
``jax.nn.relu``, ``jax.nn.relu6``, ``jax.nn.silu`` and ``jax.nn.hard_swish``. The switch is a
context variable read while tracing, so a guided function must be traced inside the block (as
:func:`jcxr.explain.guided_backprop` does). For SiLU, which has no "off" side, the guided rule
keeps SiLU's own derivative where it lets the gradient through (hard swish likewise).
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


def _guided(activation):
    """``activation`` (elementwise) whose backward pass is the guided rule: the incoming
    gradient times the activation's slope, where both the input and that gradient are > 0."""

    @jax.custom_vjp
    def rule(x):
        return activation(x)

    def forward(x):
        return activation(x), x

    def backward(x, g):
        slope = jax.jvp(activation, (x,), (jnp.ones_like(x),))[1]
        return (jnp.where((x > 0) & (g > 0), g * slope, jnp.zeros_like(g)),)

    rule.defvjp(forward, backward)
    return rule


_guided_relu, _guided_silu = _guided(jax.nn.relu), _guided(jax.nn.silu)
_guided_relu6, _guided_hard_swish = _guided(jax.nn.relu6), _guided(jax.nn.hard_swish)


def relu(x):
    return _guided_relu(x) if _GUIDED.get() else jax.nn.relu(x)


def silu(x):
    return _guided_silu(x) if _GUIDED.get() else jax.nn.silu(x)


def relu6(x):
    return _guided_relu6(x) if _GUIDED.get() else jax.nn.relu6(x)


def hard_swish(x):
    """torch's Hardswish, ``x * relu6(x + 3) / 6`` (MobileNet v3)."""
    return _guided_hard_swish(x) if _GUIDED.get() else jax.nn.hard_swish(x)
