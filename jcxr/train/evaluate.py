"""One full pass of a model over a split: metrics and the predictions they came from."""

from __future__ import annotations

import jax
import numpy as np
from scipy import special

from jcxr.data.pipeline import Loader
from jcxr.train.metrics import binary_metrics
from jcxr.train.step import Steps, bce_terms


def evaluate(steps: Steps, loader: Loader, studies: np.ndarray | None = None) -> tuple[dict, dict]:
    """Metrics and predictions (record, label, probability) over one full pass of ``loader``.

    With several processes, each predicts its own records and every process gets them all.
    With ``studies`` (the study of every record) the unit is the study: its probability and
    label are the max over its views, and its ``record`` is its lowest record index.
    """
    columns = {"record": [], "label": [], "prob": [], "logit": []}
    for batch in loader:
        p, z = steps.predict(batch["pixels"])
        for name, values in (("record", batch["record"]), ("label", batch["label"]),
                             ("prob", p), ("logit", z)):  # fmt: skip
            columns[name].append(np.asarray(values))
    columns = {name: np.concatenate(parts) for name, parts in columns.items()}
    if jax.process_count() > 1:  # padded to the same length in every process
        from jax.experimental import multihost_utils

        columns = {
            name: np.asarray(multihost_utils.process_allgather(values, tiled=True))
            for name, values in columns.items()
        }
    if not steps.tta_views:
        # The probability again, in float64 from the logit: float32's sigmoid is exactly 1.0
        # beyond a logit of ~17, and a set scored that high (a shifted external set: logits of
        # 20-22 on the second hospital's phantoms) would tie at 1.0 and lose its ranking, which
        # is all the AUC reads. float64 keeps it to a logit of ~36.
        columns["prob"] = special.expit(columns["logit"].astype(np.float64))
    keep = columns["record"] >= 0  # drop evaluation padding
    order = np.flatnonzero(keep)[np.argsort(columns["record"][keep], kind="stable")]
    records, labels, probs, logits = (
        columns[n][order] for n in ("record", "label", "prob", "logit")
    )
    if studies is not None:
        records, labels, probs, logits = per_study(studies[records], records, labels, probs, logits)
    loss = float(np.mean(np.asarray(bce_terms(logits, labels, 1.0, 1.0))))
    metrics = binary_metrics(labels, probs, loss)
    return metrics, {"record": records, "label": labels, "prob": probs}


def per_study(study, *columns):
    """Each column reduced to one value per study: min for the record, max for the rest."""
    _, first, inverse = np.unique(study, return_index=True, return_inverse=True)
    out = []
    for i, column in enumerate(columns):
        reduced = np.full(first.size, np.inf if i == 0 else -np.inf, np.float64)
        (np.minimum if i == 0 else np.maximum).at(reduced, inverse, column)
        out.append(reduced.astype(column.dtype))
    return out
