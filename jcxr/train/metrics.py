"""Binary classification metrics from probabilities (higher = positive)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from jcxr.stats import delong


def youden_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The threshold maximising sensitivity + specificity - 1 on these data."""
    fpr, tpr, thresholds = roc_curve(labels, probs)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


def at_threshold(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = probs >= threshold
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


def binary_metrics(labels: np.ndarray, probs: np.ndarray, loss: float) -> dict[str, float]:
    """Loss, AUC (scikit-learn) with its DeLong SE, and threshold metrics at 0.5 and at the
    Youden threshold."""
    labels = np.asarray(labels, np.float64)
    probs = np.asarray(probs, np.float64)
    out = {"loss": float(loss), "auc": float(roc_auc_score(labels, probs))}
    out["auc_se"] = float(delong(labels, probs).se[0])
    out.update(at_threshold(labels, probs, 0.5))
    youden = youden_threshold(labels, probs)
    out["youden_threshold"] = youden
    out.update({f"{k}_youden": v for k, v in at_threshold(labels, probs, youden).items()})
    return out
