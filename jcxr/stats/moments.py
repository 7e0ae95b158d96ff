"""DeLong's structural components and the moments built from them: AUCs, their covariance and
the variance of every pairwise difference, for independent cases or for clusters of cases.

Everything is kept in counting units (a positive's placement is the number of negatives scoring
below it plus half the ties: a half-integer), so AUCs are exact ratios of integers and identical
models give a difference variance of exactly zero.

Clustered cases follow Obuchowski (1997), "Nonparametric analysis of clustered ROC curve data",
Biometrics 53:567-578. With M positives and N negatives in I clusters, cluster i holding m_i
positives and n_i negatives, the components are summed per cluster,
``A_i = sum_j V10(X_ij) - m_i AUC`` and ``B_i = sum_k V01(Y_ik) - n_i AUC``, and

    var(AUC) = I10 / ((I10 - 1) M^2) sum A_i^2 + I01 / ((I01 - 1) N^2) sum B_i^2
               + 2 I / ((I - 1) M N) sum A_i B_i

where I10 (I01) counts the clusters holding a positive (a negative). Covariances between models
take ``A_i^r A_i^s`` in the first two sums and ``A_i^r B_i^s + B_i^r A_i^s`` in the last. When
every cluster is one case, I10 = M, I01 = N and no cluster holds both classes: the formula is
DeLong's, and the code below takes the same floating-point steps, so the numbers are identical.
"""

from __future__ import annotations

import numpy as np


def delong_moments(positive: np.ndarray, scores: np.ndarray, clusters: np.ndarray | None = None):
    """AUCs, their (clustered) DeLong covariance, and the variance of every pairwise difference.

    Args:
      positive: ``(N,)`` bool, at least 2 positives and 2 negatives.
      scores: ``(K, N)`` float64, finite.
      clusters: ``None`` (independent cases) or ``(N,)`` int codes ``0 .. I-1`` numbered in
        order of first appearance (:func:`cluster_codes`); needs 2 clusters holding a positive
        and 2 holding a negative.

    Returns:
      ``auc`` (K,), ``cov`` (K, K), ``diff_var`` (K, K) with ``diff_var[i, j] =
      var(auc[i] - auc[j])``, guarded against cancellation in ``cov[i, i] + cov[j, j] -
      2 cov[i, j]`` (exactly zero for identical models).
    """
    m = int(positive.sum())
    n = positive.size - m
    placement = placements(positive, scores)
    pos_place, neg_place = placement[:, positive], placement[:, ~positive]
    # Sums of half-integers below 2**53 are exact, so the AUC is the exact ratio, rounded once.
    auc = pos_place.sum(axis=1) / (m * n)
    if clusters is None:
        pos_sums, pos_counts, neg_sums, neg_counts = pos_place, None, neg_place, None
    else:
        n_clusters = int(clusters.max()) + 1
        pos_sums, pos_counts, pos_held = _cluster_sums(pos_place, clusters[positive], n_clusters)
        neg_sums, neg_counts, neg_held = _cluster_sums(neg_place, clusters[~positive], n_clusters)
    # V10 = placement / n and V01 = placement / m, summed per cluster: S = S10 / m + S01 / n
    # (+ the cross term), with each sum's I / (I - 1) over m (or n) equal to 1 for singletons.
    pos_centred, neg_centred = _centre(pos_sums, pos_counts), _centre(neg_sums, neg_counts)
    s10, s01 = _scatter(pos_centred), _scatter(neg_centred)
    f10 = pos_sums.shape[1] / m
    f01 = neg_sums.shape[1] / n
    cov = f10 * s10 / (n * n * m) + f01 * s01 / (m * m * n)
    diff_var = f10 * _pairwise_diff_var(pos_sums, s10, pos_counts) / (n * n * m) + (
        f01 * _pairwise_diff_var(neg_sums, s01, neg_counts) / (m * m * n)
    )
    if clusters is not None:
        cross, cross_diff = _within_cluster_cross(
            pos_centred, neg_centred, pos_held, neg_held, n_clusters
        )
        cov += (cross + cross.T) / (m * m * n * n)
        diff_var += 2.0 * cross_diff / (m * m * n * n)
    return auc, cov, diff_var


MIN_CLUSTERS_PER_CLASS = 2  # the variance divides by (I10 - 1) and (I01 - 1)


def clusters_per_class(positive: np.ndarray, ids) -> tuple[int, int]:
    """How many clusters hold a positive, and how many a negative (``ids``: (N,) any IDs)."""
    ids = np.asarray(ids)
    return int(np.unique(ids[positive]).size), int(np.unique(ids[~positive]).size)


def cluster_codes(ids) -> tuple[np.ndarray, int]:
    """``(N,)`` int codes of cluster ``ids`` numbered in order of first appearance, and the
    number of clusters. Any hashable-per-element array works: ints, strings, objects."""
    ids = np.asarray(ids)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    rank = np.empty(first.size, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.reshape(-1)], int(first.size)


def placements(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each case's placement among the other class, in counting units, for every model.

    For a positive: the number of negatives scoring below it plus half those tied with it,
    i.e. Sun & Xu's ``T_Z - T_X`` (midrank among all cases minus midrank among positives).
    For a negative: the number of positives scoring above it plus half the ties.

    Args:
      positive: ``(N,)`` bool.
      scores: ``(K, N)`` float64.

    Returns:
      ``(K, N)`` float64 half-integers. One sort per row; no m x n matrix.
    """
    k, n_cases = scores.shape
    m = int(positive.sum())
    order = np.argsort(scores, axis=1)
    flat_order = (order + n_cases * np.arange(k)[:, None]).ravel()
    ranked = scores.ravel()[flat_order]  # every row ascending, rows one after another
    is_neg = ~positive[order].ravel()
    neg_upto = np.cumsum(is_neg.reshape(k, n_cases), axis=1).ravel()  # negatives at or before
    # Twice a placement is an integer: (cases of the other class before the tie group) plus
    # (those up to its end). Untied cases form their own group; tied ones are fixed up below.
    neg_before = neg_upto - is_neg
    position = np.tile(np.arange(n_cases), k)
    first, last = position, position
    tied = ranked[1:] == ranked[:-1]
    tied[n_cases - 1 :: n_cases] = False  # never across rows
    if tied.any():
        neg_before, neg_upto, first, last = _tie_groups(tied, is_neg, neg_upto, position)
    twice_neg_below = neg_before + neg_upto
    twice_pos_below = first + last + 1 - twice_neg_below
    twice = np.where(is_neg, 2 * m - twice_pos_below, twice_neg_below)
    placed = np.empty(k * n_cases)
    placed[flat_order] = twice
    placed *= 0.5
    return placed.reshape(k, n_cases)


def _tie_groups(tied, is_neg, neg_upto, position):
    """Counts and row positions at the first and last member of each case's tie group.

    Only the cases that tie with a neighbour are touched, so sparse ties cost little.
    """
    neg_before, neg_upto_group = neg_upto - is_neg, neg_upto.copy()
    first, last = position.copy(), position.copy()
    tied_prev = np.concatenate([[False], tied])
    tied_next = np.concatenate([tied, [False]])
    members = np.flatnonzero(tied_prev | tied_next)
    group_first = np.maximum.accumulate(np.where(tied_prev[members], 0, members))
    group_last = np.minimum.accumulate(np.where(tied_next[members], tied.size, members)[::-1])[::-1]
    neg_before[members] = neg_upto[group_first] - is_neg[group_first]
    neg_upto_group[members] = neg_upto[group_last]
    first[members] = position[group_first]
    last[members] = position[group_last]
    return neg_before, neg_upto_group, first, last


def _cluster_sums(place: np.ndarray, codes: np.ndarray, n_clusters: int):
    """Per-cluster sums ``(K, C)`` of one class's placements over the C clusters that hold
    that class (in cluster-code order), each such cluster's case count ``(C,)`` and code."""
    k = place.shape[0]
    counts = np.bincount(codes, minlength=n_clusters)
    flat = (codes + n_clusters * np.arange(k)[:, None]).ravel()
    sums = np.bincount(flat, weights=place.ravel(), minlength=k * n_clusters)
    held = np.flatnonzero(counts)
    return sums.reshape(k, n_clusters)[:, held], counts[held].astype(np.float64), held


def _centre(x: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
    """``x`` (K, C) minus each column's share of the row total: ``counts / counts.sum()`` of
    it (the row mean when ``counts`` is None): cluster sums minus ``m_i`` times the mean."""
    if counts is None:
        return x - x.mean(axis=1, keepdims=True)
    return x - counts * (x.sum(axis=1, keepdims=True) / counts.sum())


def _scatter(centred: np.ndarray) -> np.ndarray:
    """(K, K) ``centred @ centred.T / (C - 1)`` over the C columns: the rows' sample
    covariance (ddof = 1) when ``centred`` is centred on the row mean."""
    return centred @ centred.T / (centred.shape[1] - 1)


def _pairwise_diff_var(x, scatter, counts=None, rtol: float = 1e-6) -> np.ndarray:
    """(K, K) scatter (as :func:`_scatter`, centred as :func:`_centre`) of ``x[i] - x[j]``.

    ``scatter`` is that of the rows themselves. ``s[i, i] + s[j, j] - 2 s[i, j]`` is exact
    enough unless the difference is tiny next to the rows' own scatter; those pairs (rtol) are
    recomputed from the differences themselves, where half-integer differences are exact, so
    two rows that differ by a constant (identical models included) give exactly 0.
    """
    own = np.diag(scatter)
    scale = own[:, None] + own[None, :]
    var = scale - 2.0 * scatter
    i, j = np.nonzero(np.triu(var <= rtol * scale, 1))
    if i.size:
        d = _centre(x[i] - x[j], counts)
        var[i, j] = var[j, i] = np.einsum("ij,ij->i", d, d) / (x.shape[1] - 1)
    np.fill_diagonal(var, 0.0)
    return var


def _within_cluster_cross(pos_centred, neg_centred, pos_held, neg_held, n_clusters):
    """Obuchowski's cross term over the clusters holding both classes, in counting units:
    ``I / (I - 1) sum_i A_i^r B_i^s`` (K, K), and for every pair the same of the
    differences, ``I / (I - 1) sum_i (A^r - A^s)_i (B^r - B^s)_i`` (K, K). The columns of
    ``pos_centred`` (``neg_centred``) are the clusters ``pos_held`` (``neg_held``)."""
    k = pos_centred.shape[0]
    both = np.intersect1d(pos_held, neg_held, assume_unique=True)
    if not both.size:
        return np.zeros((k, k)), np.zeros((k, k))
    a = pos_centred[:, np.isin(pos_held, both)]
    b = neg_centred[:, np.isin(neg_held, both)]
    factor = n_clusters / (n_clusters - 1)
    cross = factor * (a @ b.T)
    i, j = np.triu_indices(k, 1)
    cross_diff = np.zeros((k, k))
    cross_diff[i, j] = cross_diff[j, i] = factor * np.einsum("pc,pc->p", a[i] - a[j], b[i] - b[j])
    return cross, cross_diff
