"""The seed studies' optimisation recipes, assembled from optax pieces.

* ``adam`` (Sabottke & Spieler 2020): Adam at a fixed rate.
* ``one_cycle`` (Chizari 2021): body frozen for ``freeze_epochs`` while the head trains with its
  own one-cycle schedule, then both train with one-cycle schedules at discriminative rates;
  Adam(b1, b2) with decoupled weight decay.
* ``rmsprop_plateau`` (Cardona Cardenas et al. 2020): RMSprop; the rate is multiplied by
  ``plateau_factor`` after ``plateau_patience`` epochs without validation-loss improvement
  (:class:`Plateau`).

Every recipe wraps its rates in ``optax.inject_hyperparams`` so that the current rate can be
logged (and, for the plateau recipe, changed between epochs without recompiling).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax


def is_head(path) -> bool:
    return str(getattr(path[0], "key", path[0])) == "head"


def make_optimizer(optim, steps_per_epoch: int, epochs: int) -> optax.GradientTransformation:
    """The recipe named ``optim.recipe`` for a run of ``epochs`` x ``steps_per_epoch`` steps."""
    if optim.recipe == "adam":
        return optax.inject_hyperparams(optax.adamw)(
            learning_rate=optim.learning_rate,
            b1=optim.b1,
            b2=optim.b2,
            weight_decay=optim.weight_decay,
        )
    if optim.recipe == "rmsprop_plateau":
        return optax.inject_hyperparams(optax.rmsprop)(learning_rate=optim.learning_rate)
    if optim.recipe == "one_cycle":
        frozen = optim.freeze_epochs * steps_per_epoch
        rest = max(1, (epochs - optim.freeze_epochs) * steps_per_epoch)
        warmup = optax.cosine_onecycle_schedule(max(frozen, 1), optim.frozen_learning_rate)
        head = _after(
            frozen, warmup, optax.cosine_onecycle_schedule(rest, optim.head_learning_rate)
        )
        body = _after(
            frozen,
            optax.constant_schedule(0.0),
            optax.cosine_onecycle_schedule(rest, optim.body_learning_rate),
        )

        def adam(schedule):
            return optax.inject_hyperparams(optax.adamw)(
                learning_rate=schedule, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay
            )

        return optax.multi_transform(
            {"head": adam(head), "body": adam(body)},
            lambda params: jax.tree_util.tree_map_with_path(
                lambda path, _: "head" if is_head(path) else "body", params
            ),
        )
    raise ValueError(f"unknown optim.recipe {optim.recipe!r}")


def _after(boundary: int, first, second):
    if boundary == 0:
        return second
    return optax.join_schedules([first, second], [boundary])


def current_learning_rates(opt_state) -> dict[str, jax.Array]:
    """The rates the next update uses: ``{"lr": ...}`` or ``{"lr_head": ..., "lr_body": ...}``."""
    if hasattr(opt_state, "hyperparams"):
        return {"lr": opt_state.hyperparams["learning_rate"]}
    inner = opt_state.inner_states
    return {f"lr_{name}": inner[name].inner_state.hyperparams["learning_rate"] for name in inner}


def scale_learning_rate(opt_state, factor: float):
    """The plateau recipe's rate times ``factor`` (host side, between epochs)."""
    opt_state.hyperparams["learning_rate"] = opt_state.hyperparams["learning_rate"] * factor
    return opt_state


def set_learning_rate(opt_state, rate: float):
    """A single-rate recipe's rate for the next updates set to ``rate`` (host side)."""
    opt_state.hyperparams["learning_rate"] = jnp.asarray(rate, jnp.float32)
    return opt_state


@dataclasses.dataclass
class Plateau:
    """Keras-style reduce-on-plateau bookkeeping, checkpointed with the run."""

    patience: int
    factor: float
    best: float = float("inf")
    waited: int = 0

    def update(self, val_loss: float) -> bool:
        """Record an epoch's validation loss; True when the rate should be reduced now."""
        if val_loss < self.best:
            self.best, self.waited = val_loss, 0
            return False
        self.waited += 1
        if self.waited >= self.patience:
            self.waited = 0
            return True
        return False

    def state(self) -> dict:
        return {"best": self.best, "waited": self.waited}

    def load(self, state: dict) -> None:
        self.best, self.waited = float(state["best"]), int(state["waited"])
