"""Multiple-comparison adjustment of p-values (numpy only)."""

from __future__ import annotations

import numpy as np

CORRECTIONS = ("holm", "bonferroni", "bh", "none")


def adjust_pvalues(p, method: str = "holm") -> np.ndarray:
    """Adjust a 1-D array of p-values for multiple comparisons.

    ``method``: ``"holm"`` (step-down, controls the family-wise error rate), ``"bonferroni"``,
    ``"bh"`` (Benjamini-Hochberg, controls the false discovery rate) or ``"none"``.
    Returns adjusted p-values in the input order, clipped to at most 1.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}; got {method!r}")
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p-values must be a 1-D array; got shape {p.shape}")
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1] and not be NaN")
    n = p.size
    if n == 0 or method == "none":
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * n, 1.0)

    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        # p_(i) * (n - i + 1), made monotone non-decreasing from the smallest p upwards.
        stepped = np.maximum.accumulate(ranked * (n - np.arange(n)))
    else:  # bh
        # p_(i) * n / i, made monotone non-increasing from the largest p downwards.
        stepped = np.minimum.accumulate((ranked * n / np.arange(1, n + 1))[::-1])[::-1]
    adjusted = np.empty(n)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def adjust_pairs(p: np.ndarray, method: str = "holm") -> np.ndarray:
    """(K, K) symmetric p-values adjusted over the K (K - 1) / 2 pairs above the diagonal;
    the diagonal is 1."""
    k = p.shape[0]
    upper = np.triu_indices(k, 1)
    adjusted = np.ones((k, k))
    adjusted[upper] = adjust_pvalues(p[upper], method)
    adjusted.T[upper] = adjusted[upper]
    return adjusted
