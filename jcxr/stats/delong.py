"""DeLong's test for ROC AUCs: K correlated curves on the same cases, or two independent ones.

Conventions (shared by every function here):

* A higher score means "more likely positive". Scores are never flipped: a model whose AUC is
  below 0.5 keeps it.
* A tie between a positive and a negative counts one half (the Mann-Whitney convention, equal to
  scikit-learn's ``roc_auc_score``).
* Variances and covariances are DeLong, DeLong & Clarke-Pearson (1988): with structural
  components V10 (one per positive) and V01 (one per negative), ``S = S10 / m + S01 / n``.
  The components are computed with Sun & Xu's (2014) midrank algorithm, one sort per model:
  O(K N log N) time and O(K N) memory, never an m x n matrix.
* A pair whose difference has standard deviation 0 gets z = 0 and p = 1 when the two AUCs are
  equal, and z = +/-inf and p = 0 otherwise. ``log10_p`` stays finite where ``p`` underflows.

Internally every component is kept in counting units (a positive's placement is the number of
negatives scoring below it plus half the ties: a half-integer), so AUCs are exact ratios of
integers and identical models give a difference variance of exactly zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

from jcxr.stats._inputs import BACKENDS, NAN_POLICIES, check_options, validated_inputs
from jcxr.stats.multitest import adjust_pvalues
from jcxr.stats.result import DeLongResult, Omnibus, UnpairedDeLongResult, z_critical

__all__ = [
    "BACKENDS",
    "NAN_POLICIES",
    "DeLongResult",
    "Omnibus",
    "UnpairedDeLongResult",
    "delong",
    "delong_moments",
    "delong_unpaired",
    "placements",
]


# --------------------------------------------------------------------------- public API


def delong(
    y_true,
    scores,
    *,
    names: Sequence[str] | None = None,
    alpha: float = 0.05,
    correction: str = "holm",
    nan_policy: str = "raise",
    backend: str = "numpy",
) -> DeLongResult:
    """Compare K >= 1 correlated ROC AUCs measured on the same N cases (DeLong 1988).

    Args:
      y_true: ``(N,)`` binary labels (bool, or numbers equal to 0 and 1). 1 = positive.
      scores: ``(K, N)`` or ``(N,)`` array, or a mapping ``name -> (N,)`` scores. Higher = positive.
      names: K model names (default: the mapping's keys, else ``"0" .. "K-1"``).
      alpha: level of every confidence interval (``1 - alpha`` coverage).
      correction: ``"holm"``, ``"bonferroni"``, ``"bh"`` or ``"none"``, applied over the
        K (K - 1) / 2 pairs to give ``p_adjusted``.
      nan_policy: ``"raise"`` on any non-finite score or missing label, or ``"omit"`` to drop
        such cases from every model jointly (the count is ``result.n_dropped``).
      backend: ``"numpy"`` or ``"jax"`` (jit-compiled, float64; same numbers to ~1e-12).

    Returns:
      A :class:`DeLongResult`.
    """
    check_options(alpha, correction, nan_policy, backend)
    positive, score_matrix, names, n_dropped = validated_inputs(y_true, scores, names, nan_policy)
    if backend == "jax":
        from jcxr.stats import jax_backend

        auc, cov, diff_var = jax_backend.delong_moments_float64(positive, score_matrix)
    else:
        auc, cov, diff_var = delong_moments(positive, score_matrix)
    return _correlated_result(
        names,
        auc,
        cov,
        diff_var,
        int(positive.sum()),
        int((~positive).sum()),
        n_dropped,
        alpha,
        correction,
    )


def delong_unpaired(
    y_a,
    score_a,
    y_b,
    score_b,
    *,
    names: tuple[str, str] = ("a", "b"),
    alpha: float = 0.05,
    nan_policy: str = "raise",
) -> UnpairedDeLongResult:
    """Compare two AUCs measured on independent case sets (e.g. internal vs external test set).

    The two AUC estimates are independent, so ``var(auc_a - auc_b) = var_a + var_b``, each the
    DeLong variance on its own set. Conventions as in :func:`delong`.
    """
    check_options(alpha, "none", nan_policy, "numpy")
    aucs, variances, n_pos, n_neg = [], [], [], []
    for name, y, s in ((names[0], y_a, score_a), (names[1], y_b, score_b)):
        if np.ndim(s) != 1:
            raise ValueError(
                f"set {name!r}: scores must be one (N,) vector; got shape {np.shape(s)}"
            )
        positive, score_matrix, _, _ = validated_inputs(
            y, s, [name], nan_policy, where=f"set {name!r}: "
        )
        auc, cov, _ = delong_moments(positive, score_matrix)
        aucs.append(auc[0])
        variances.append(cov[0, 0])
        n_pos.append(int(positive.sum()))
        n_neg.append(int((~positive).sum()))
    auc = np.array(aucs)
    se = np.sqrt(np.array(variances))
    zc = z_critical(alpha)
    diff = float(auc[0] - auc[1])
    diff_sd = math.sqrt(variances[0] + variances[1])
    z, p, log10_p = _z_and_p(np.array(diff), np.array(diff_sd))
    return UnpairedDeLongResult(
        names=tuple(names),
        auc=auc,
        se=se,
        ci=np.clip(auc[:, None] + np.array([-zc, zc]) * se[:, None], 0.0, 1.0),
        diff=diff,
        diff_ci=diff + np.array([-zc, zc]) * diff_sd,
        z=float(z),
        p=float(p),
        log10_p=float(log10_p),
        n_positive=tuple(n_pos),
        n_negative=tuple(n_neg),
        alpha=alpha,
    )


def delong_moments(positive: np.ndarray, scores: np.ndarray):
    """AUCs, their DeLong covariance, and the variance of every pairwise difference.

    Args:
      positive: ``(N,)`` bool, at least 2 positives and 2 negatives.
      scores: ``(K, N)`` float64, finite.

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
    # V10 = pos_place / n and V01 = neg_place / m; S = S10 / m + S01 / n.
    s10, s01 = _row_cov(pos_place), _row_cov(neg_place)
    cov = s10 / (n * n * m) + s01 / (m * m * n)
    diff_var = _pairwise_diff_var(pos_place, s10) / (n * n * m) + _pairwise_diff_var(
        neg_place, s01
    ) / (m * m * n)
    return auc, cov, diff_var


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


# --------------------------------------------------------------------------- internals


def _pairwise_diff_var(x: np.ndarray, cov: np.ndarray, rtol: float = 1e-6) -> np.ndarray:
    """(K, K) sample variance (ddof = 1) of ``x[i] - x[j]`` for the rows of ``x`` (K, M).

    ``cov`` is the rows' own sample covariance. ``cov[i, i] + cov[j, j] - 2 cov[i, j]`` is exact
    enough unless the difference is tiny next to the rows' variances; those pairs (rtol) are
    recomputed from the differences themselves, where half-integer differences are exact, so two
    rows that differ by a constant (identical models included) give exactly 0.
    """
    own = np.diag(cov)
    scale = own[:, None] + own[None, :]
    var = scale - 2.0 * cov
    i, j = np.nonzero(np.triu(var <= rtol * scale, 1))
    if i.size:
        d = x[i] - x[j]
        d -= d.mean(axis=1, keepdims=True)
        var[i, j] = var[j, i] = np.einsum("ij,ij->i", d, d) / (x.shape[1] - 1)
    np.fill_diagonal(var, 0.0)
    return var


def _row_cov(x: np.ndarray) -> np.ndarray:
    """(K, K) sample covariance (ddof = 1) of the rows of ``x`` (K, M)."""
    centred = x - x.mean(axis=1, keepdims=True)
    return centred @ centred.T / (x.shape[1] - 1)


def _correlated_result(
    names, auc, cov, diff_var, n_positive, n_negative, n_dropped, alpha, correction
) -> DeLongResult:
    k = auc.size
    zc = z_critical(alpha)
    se = np.sqrt(np.diag(cov))
    diff = auc[:, None] - auc[None, :]
    diff_sd = np.sqrt(np.maximum(diff_var, 0.0))
    z, p, log10_p = _z_and_p(diff, diff_sd)
    upper = np.triu_indices(k, 1)
    p_adjusted = np.ones((k, k))
    p_adjusted[upper] = adjust_pvalues(p[upper], correction)
    p_adjusted.T[upper] = p_adjusted[upper]
    return DeLongResult(
        names=tuple(names),
        auc=auc,
        cov=cov,
        se=se,
        ci=np.clip(auc[:, None] + np.array([-zc, zc]) * se[:, None], 0.0, 1.0),
        z=z,
        p=p,
        log10_p=log10_p,
        p_adjusted=p_adjusted,
        diff_ci=diff[..., None] + np.array([-zc, zc]) * diff_sd[..., None],
        omnibus=_omnibus(auc, cov) if k > 1 else None,
        n_positive=n_positive,
        n_negative=n_negative,
        n_dropped=n_dropped,
        alpha=alpha,
        correction=correction,
    )


def _z_and_p(diff: np.ndarray, sd: np.ndarray):
    """Two-sided normal test of ``diff / sd`` with the sd = 0 convention (see module doc)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, diff / np.where(sd > 0, sd, 1.0), np.sign(diff) * np.inf)
    z = np.where((sd == 0) & (diff == 0), 0.0, z)
    tail = -np.abs(z)
    p = np.minimum(2.0 * special.ndtr(tail), 1.0)
    log10_p = np.minimum((math.log(2.0) + special.log_ndtr(tail)) / math.log(10.0), 0.0)
    return z, p, log10_p


def _omnibus(auc: np.ndarray, cov: np.ndarray) -> Omnibus:
    """Chi-square test that all AUCs are equal: contrasts auc[0] - auc[k], generalised inverse."""
    k = auc.size
    contrast = np.zeros((k - 1, k))
    contrast[:, 0] = 1.0
    contrast[np.arange(k - 1), np.arange(1, k)] = -1.0
    theta = contrast @ auc
    eigval, eigvec = np.linalg.eigh(contrast @ cov @ contrast.T)
    keep = eigval > eigval.max(initial=0.0) * (k - 1) * np.finfo(float).eps * 16
    df = int(keep.sum())
    projected = eigvec.T @ theta
    if df == 0:
        statistic = 0.0 if np.all(theta == 0) else math.inf
    else:
        statistic = float(np.sum(projected[keep] ** 2 / eigval[keep]))
    pvalue = 1.0 if df == 0 and statistic == 0 else float(special.chdtrc(max(df, 1), statistic))
    return Omnibus(statistic=statistic, df=df, pvalue=pvalue)
