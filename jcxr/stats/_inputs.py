"""Input checks shared by jcxr.stats' tests: labels, score matrices, names and options, each
error naming what was wrong, what was found and what was expected."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from jcxr.stats.moments import MIN_CLUSTERS_PER_CLASS, clusters_per_class
from jcxr.stats.multitest import CORRECTIONS

NAN_POLICIES = ("raise", "omit")
BACKENDS = ("numpy", "jax")


def check_options(alpha, correction, nan_policy, backend) -> None:
    if not (isinstance(alpha, float | int) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be a number in (0, 1); got {alpha!r}")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}; got {correction!r}")
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}; got {nan_policy!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")


def validated_inputs(y_true, scores, names, nan_policy, where: str = "", clusters=None):
    """Checked ``(positive (N,) bool, scores (K, N) float64, names, n_dropped, clusters)``;
    ``clusters`` is the ``(N,)`` array of cluster IDs (after dropping), or None."""
    labels = _labels_as_float(y_true, where)
    score_matrix, names = _scores_as_matrix(scores, names, where)
    n_cases = labels.size
    if score_matrix.shape[1] != n_cases:
        raise ValueError(
            f"{where}length mismatch: y_true has {n_cases} cases but the score vector(s) "
            f"{names} have {score_matrix.shape[1]}"
        )
    if clusters is not None:
        clusters = _cluster_ids(clusters, n_cases, where)
    bad_score = ~np.isfinite(score_matrix)
    bad_label = np.isnan(labels)
    if nan_policy == "raise":
        if bad_label.any():
            raise ValueError(
                f"{where}y_true has {int(bad_label.sum())} missing (NaN) label(s), first at case "
                f"{int(np.argmax(bad_label))}; pass nan_policy='omit' to drop those cases"
            )
        for k, name in enumerate(names):
            if bad_score[k].any():
                raise ValueError(
                    f"{where}scores[{name!r}] has {int(bad_score[k].sum())} NaN/inf value(s), "
                    f"first at case {int(np.argmax(bad_score[k]))}; scores must be finite (pass "
                    "nan_policy='omit' to drop those cases from every model)"
                )
        n_dropped = 0
    else:
        keep = ~(bad_label | bad_score.any(axis=0))
        n_dropped = int(n_cases - keep.sum())
        labels, score_matrix = labels[keep], score_matrix[:, keep]
        clusters = None if clusters is None else clusters[keep]
    positive = labels == 1.0
    m, n = int(positive.sum()), int(labels.size - positive.sum())
    if m == 0 or n == 0:
        present = "positives" if m else "negatives"
        raise ValueError(
            f"{where}only one class present: {m + n} cases, all {present} (after dropping "
            f"{n_dropped}); the AUC needs both positives and negatives"
        )
    if m < 2 or n < 2:
        raise ValueError(
            f"{where}DeLong variance needs at least 2 positives and 2 negatives; got {m} "
            f"positive(s) and {n} negative(s)"
        )
    return positive, score_matrix, names, n_dropped, clusters


def check_clusters(positive: np.ndarray, codes: np.ndarray) -> None:
    """Obuchowski's variance needs 2 clusters holding a positive and 2 holding a negative."""
    with_pos, with_neg = clusters_per_class(positive, codes)
    if min(with_pos, with_neg) < MIN_CLUSTERS_PER_CLASS:
        raise ValueError(
            f"clusters: the clustered variance needs at least 2 clusters holding a positive and "
            f"2 holding a negative; got {with_pos} and {with_neg}"
        )


def _cluster_ids(clusters, n_cases: int, where: str) -> np.ndarray:
    ids = np.asarray(clusters)
    if ids.ndim != 1:
        raise ValueError(f"{where}clusters must be a 1-D vector of IDs; got shape {ids.shape}")
    if ids.size != n_cases:
        raise ValueError(
            f"{where}clusters has {ids.size} IDs but y_true has {n_cases} cases; give one "
            "cluster ID (patient or study) per case"
        )
    if ids.dtype.kind == "f":
        missing = np.isnan(ids)
    elif ids.dtype.kind == "O":
        missing = np.array([v is None or (isinstance(v, float) and v != v) for v in ids], bool)
    else:
        missing = np.zeros(n_cases, bool)
    if ids.dtype.kind in "OUS":
        missing |= np.array([str(v).strip() == "" for v in ids], bool)
    if missing.any():
        raise ValueError(
            f"{where}clusters has {int(missing.sum())} missing ID(s) (NaN, None or empty), "
            f"first at case {int(np.argmax(missing))}; every case needs its cluster"
        )
    if ids.dtype.kind == "O":
        ids = ids.astype(str)
    return ids


def _labels_as_float(y_true, where: str) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{where}y_true must be a 1-D vector of labels; got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.float64)
    if not (np.issubdtype(y.dtype, np.number)):
        raise ValueError(
            f"{where}y_true must be numeric or bool labels in {{0, 1}}; got dtype {y.dtype} "
            f"(e.g. {y[:3].tolist()!r})"
        )
    y = y.astype(np.float64)
    invalid = ~(np.isnan(y) | (y == 0.0) | (y == 1.0))
    if invalid.any():
        found = np.unique(y[invalid])
        raise ValueError(
            f"{where}y_true must contain only 0 and 1; found {int(invalid.sum())} case(s) with "
            f"other values {found[:5].tolist()}, first at case {int(np.argmax(invalid))}"
        )
    return y


def _scores_as_matrix(scores, names, where: str):
    if isinstance(scores, Mapping):
        if names is not None:
            raise ValueError(f"{where}names are taken from the scores mapping; do not pass both")
        names = [str(k) for k in scores]
        rows = []
        for name, vector in scores.items():
            vector = np.asarray(vector)
            if vector.ndim != 1:
                raise ValueError(
                    f"{where}scores[{name!r}] must be a 1-D vector; got shape {vector.shape}"
                )
            rows.append(vector)
        lengths = {r.size for r in rows}
        if len(lengths) > 1:
            sizes = {n: r.size for n, r in zip(names, rows, strict=True)}
            raise ValueError(f"{where}length mismatch between score vectors: {sizes}")
        matrix = np.stack(rows) if rows else np.empty((0, 0))
    else:
        matrix = np.asarray(scores)
        if matrix.ndim == 1:
            matrix = matrix[None]
        if matrix.ndim != 2:
            raise ValueError(f"{where}scores must be (K, N) or (N,); got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        raise ValueError(f"{where}scores holds no model (K = 0); need K >= 1")
    if not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == bool):
        raise ValueError(f"{where}scores must be numeric; got dtype {matrix.dtype}")
    names = [str(i) for i in range(matrix.shape[0])] if names is None else [str(n) for n in names]
    if len(names) != matrix.shape[0]:
        raise ValueError(f"{where}got {len(names)} name(s) for {matrix.shape[0]} score vector(s)")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}model names must be unique; got {names}")
    return matrix.astype(np.float64), names


def model_index(names, key, what: str) -> int:
    """The index of model ``key`` (a name or an index) among ``names``; ``what`` names the
    argument in the error."""
    names = list(names)
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        if not 0 <= key < len(names):
            raise ValueError(f"{what}: index {key} out of range for {len(names)} models")
        return int(key)
    if key not in names:
        raise ValueError(f"{what}: no model {key!r}; the models are {names}")
    return names.index(key)
