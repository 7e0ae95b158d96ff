"""Did a cell train, or only run? Convergence flags from a cell's epoch history.

A resolution comparison is about the images only if every cell trained as far as it could. A
cell is flagged when

* ``still_improving``: its best epoch (by validation AUC) is its last, so more epochs might
  have raised it (every one-epoch cell, too: nothing shows that it converged);
* ``at_chance``: no epoch's validation AUC is above chance by its 95% confidence interval
  (AUC - 1.96 SE <= 0.5, DeLong SE): the network learnt nothing this set can show;
* ``diverged``: its last epoch's mean training loss is more than 1.5 times the lowest epoch
  mean (a non-finite loss already fails the cell).

``train.until_plateau`` trains each cell until validation AUC has not improved for
``train.patience`` epochs (at most ``train.epochs``), the same rule at every resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

CHANCE_Z = 1.96  # two-sided 95%
DIVERGED_FACTOR = 1.5

FLAGS = {
    "still_improving": "still improving: the best epoch is the last",
    "at_chance": "validation AUC never above chance (95% CI)",
    "diverged": f"training loss diverged (last epoch > {DIVERGED_FACTOR:g} x its lowest)",
}


def best_epoch_index(history: Sequence[dict]) -> int:
    """The epoch (from 0) with the highest validation AUC; the first of equals, as training
    keeps the first best checkpoint."""
    aucs = [e["auc"] for e in history]
    return aucs.index(max(aucs))


def flags(history: Sequence[dict]) -> tuple[str, ...]:
    """The convergence flags of one cell's ``history`` (validation metrics per epoch with
    ``auc``, ``auc_se`` and ``train_loss``), in :data:`FLAGS` order."""
    if not history:
        return ()
    found = set()
    if best_epoch_index(history) == len(history) - 1:
        found.add("still_improving")
    if all(e["auc"] - CHANCE_Z * e["auc_se"] <= 0.5 for e in history):
        found.add("at_chance")
    losses = [e["train_loss"] for e in history]
    if losses[-1] > DIVERGED_FACTOR * min(losses):
        found.add("diverged")
    return tuple(f for f in FLAGS if f in found)


def plateaued(history: Sequence[dict], patience: int) -> bool:
    """Validation AUC has not improved for ``patience`` epochs."""
    return bool(history) and len(history) - 1 - best_epoch_index(history) >= patience


def describe(found: Sequence[str]) -> str:
    """The flags in words, "; "-separated ("" for none)."""
    return "; ".join(FLAGS[f] for f in found)
