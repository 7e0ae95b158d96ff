"""One full pass of a model over a split: metrics and the predictions they came from."""

from __future__ import annotations

import jax
import numpy as np

from jcxr import predictions
from jcxr.data.pipeline import Loader
from jcxr.train.metrics import binary_metrics
from jcxr.train.step import Steps, bce_terms


def evaluate(steps: Steps, loader: Loader, studies: np.ndarray | None = None) -> tuple[dict, dict]:
    """Metrics and predictions over one full pass of ``loader``: ``record``, ``label``,
    ``score`` (the logit of the probability, float64, what every ranking reads; with test-time
    views, the logit of their mean probability) and ``prob`` (its probability, for people).

    With several processes, each predicts its own records and every process gets them all.
    With ``studies`` (the study of every record) the unit is the study: its score and label
    are the max over its views, and its ``record`` is its lowest record index.
    """
    columns = {"record": [], "label": [], "logits": []}
    for batch in loader:
        for name, values in (("record", batch["record"]), ("label", batch["label"]),
                             ("logits", steps.predict(batch["pixels"]))):  # fmt: skip
            columns[name].append(np.asarray(values))
    columns = {name: np.concatenate(parts) for name, parts in columns.items()}
    if jax.process_count() > 1:  # padded to the same length in every process
        from jax.experimental import multihost_utils

        columns = {
            name: np.asarray(multihost_utils.process_allgather(values, tiled=True))
            for name, values in columns.items()
        }
    keep = columns["record"] >= 0  # drop evaluation padding
    order = np.flatnonzero(keep)[np.argsort(columns["record"][keep], kind="stable")]
    records, labels, logits = (columns[n][order] for n in ("record", "label", "logits"))
    scores, original = predictions.mean_probability_logit(logits, axis=1), logits[:, 0]
    if studies is not None:
        records, labels, scores, original = per_study(
            studies[records], records, labels, scores, original
        )
    loss = float(np.mean(np.asarray(bce_terms(original, labels, 1.0, 1.0))))
    metrics = binary_metrics(labels, scores, loss)
    return metrics, predictions.columns(records, labels, scores)


def per_study(study, *columns):
    """Each column reduced to one value per study: min for the record, max for the rest."""
    _, first, inverse = np.unique(study, return_index=True, return_inverse=True)
    out = []
    for i, column in enumerate(columns):
        reduced = np.full(first.size, np.inf if i == 0 else -np.inf, np.float64)
        (np.minimum if i == 0 else np.maximum).at(reduced, inverse, column)
        out.append(reduced.astype(column.dtype))
    return out
