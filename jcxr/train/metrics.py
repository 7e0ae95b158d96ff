"""Binary classification metrics from scores: logits, the log-odds of the positive class.

Ranking reads logits, never probabilities (jcxr.predictions says why). Probabilities appear
only where people read them: the 0.5 threshold (a logit of 0) and the Youden threshold are
reported as probabilities.
"""

from __future__ import annotations

import numpy as np
from scipy import special
from sklearn.metrics import roc_auc_score, roc_curve

from jcxr.stats import delong


def youden_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score (logit) threshold maximising sensitivity + specificity - 1 on these data."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    return float(thresholds[int(np.argmax(tpr - fpr))])


def at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Confusion-matrix metrics of calling ``scores >= threshold`` positive."""
    predicted = scores >= threshold
    positive = labels == 1
    tp = int(np.sum(predicted & positive))
    tn = int(np.sum(~predicted & ~positive))
    fp = int(np.sum(predicted & ~positive))
    fn = int(np.sum(~predicted & positive))

    def ratio(a, b):
        return a / b if b else float("nan")

    precision, sensitivity = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "accuracy": ratio(tp + tn, labels.size),
        "sensitivity": sensitivity,
        "specificity": ratio(tn, tn + fp),
        "precision": precision,
        "f1": ratio(2 * precision * sensitivity, precision + sensitivity),
    }


def binary_metrics(labels: np.ndarray, scores: np.ndarray, loss: float) -> dict[str, float]:
    """Loss, AUC (scikit-learn) with its DeLong SE, and threshold metrics at probability 0.5
    (logit 0) and at the Youden threshold (``youden_threshold``: a probability) of ``scores``,
    logits."""
    labels = np.asarray(labels, np.float64)
    scores = np.asarray(scores, np.float64)
    out = {"loss": float(loss), "auc": float(roc_auc_score(labels, scores))}
    out["auc_se"] = float(delong(labels, scores).se[0])
    out.update(at_threshold(labels, scores, 0.0))
    youden = youden_threshold(labels, scores)
    out["youden_threshold"] = float(special.expit(youden))  # inf (call none positive) -> 1.0
    out.update({f"{k}_youden": v for k, v in at_threshold(labels, scores, youden).items()})
    return out
