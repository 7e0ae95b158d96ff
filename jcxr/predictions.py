"""Scores of predictions: the logit is what ranks.

A cell saves its predictions of each split as ``cells/ID/predictions_SPLIT.npz``: ``record``,
``label``, ``score`` (float64 logit of the probability) and ``prob`` (its probability, for
people). Every AUC, DeLong test, ROC curve and ranking reads ``score``: a model that scores a
shifted set far out in the tail (logits past ~17 in float32, ~37 in float64) gives
probabilities that are all exactly 1.0, tied, and an AUC of 0.5, where the logits still hold
the order.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def mean_probability_logit(logits, axis: int = -1) -> np.ndarray:
    """The logit of the mean probability over ``axis``, in float64 and without forming the
    probabilities: ``logsumexp(log sigmoid(z)) - logsumexp(log sigmoid(-z))``. It averages
    test-time views and k-fold ensembles as their probabilities would, and keeps the order
    where every probability would round to 1.0. One value along ``axis`` is returned as is."""
    z = np.asarray(logits, np.float64)
    if z.shape[axis] == 1:
        return np.squeeze(z, axis)
    return special.logsumexp(special.log_expit(z), axis) - special.logsumexp(
        special.log_expit(-z), axis
    )


def columns(record, label, score) -> dict:
    """A predictions file's columns: ``prob`` is derived from ``score`` here, and only here."""
    return {"record": record, "label": label, "score": score, "prob": special.expit(score)}


def scores_of(saved) -> np.ndarray:
    """The ranking score (logit) of a predictions file, float64. Files written before scores
    were saved hold only ``prob``; their score is its logit (ties at 1.0 stay tied)."""
    if "score" in saved:
        return np.asarray(saved["score"], np.float64)
    return special.logit(np.asarray(saved["prob"], np.float64))
