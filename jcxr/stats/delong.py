"""DeLong's test for ROC AUCs: K correlated curves on the same cases, or two independent ones.

Conventions (shared by every function here):

* A higher score means "more likely positive". Scores are never flipped: a model whose AUC is
  below 0.5 keeps it.
* A tie between a positive and a negative counts one half (the Mann-Whitney convention, equal to
  scikit-learn's ``roc_auc_score``).
* Variances and covariances are DeLong, DeLong & Clarke-Pearson (1988): with structural
  components V10 (one per positive) and V01 (one per negative), ``S = S10 / m + S01 / n``.
  With ``clusters`` (several images of one patient, several views of one study) they are
  Obuchowski's (1997) clustered estimator, which reduces exactly to DeLong's for clusters of
  one case (:mod:`jcxr.stats.moments`). The components are computed with Sun & Xu's (2014)
  midrank algorithm, one sort per model: O(K N log N) time and O(K N) memory, never an
  m x n matrix.
* A pair whose difference has standard deviation 0 gets z = 0 and p = 1 when the two AUCs are
  equal, and z = +/-inf and p = 0 otherwise. ``log10_p`` stays finite where ``p`` underflows.

Results follow scipy.stats: ``statistic`` (z), ``pvalue`` and ``confidence_interval()``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

from jcxr.stats._distributions import standardise
from jcxr.stats._inputs import (
    BACKENDS,
    NAN_POLICIES,
    check_clusters,
    check_options,
    validated_inputs,
)
from jcxr.stats.moments import cluster_codes, delong_moments, placements
from jcxr.stats.multitest import adjust_pairs
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
    clusters=None,
    names: Sequence[str] | None = None,
    alpha: float = 0.05,
    correction: str = "holm",
    nan_policy: str = "raise",
    backend: str = "numpy",
) -> DeLongResult:
    """Compare K >= 1 correlated ROC AUCs measured on the same N cases (DeLong 1988), or on
    N cases in clusters (Obuchowski 1997).

    Args:
      y_true: ``(N,)`` binary labels (bool, or numbers equal to 0 and 1). 1 = positive.
      scores: ``(K, N)`` or ``(N,)`` array, or a mapping ``name -> (N,)`` scores. Higher = positive.
      clusters: ``(N,)`` cluster of every case (patient or study IDs: ints or strings), or
        None for independent cases. A cluster may hold positives, negatives or both; the
        variance then counts each cluster, not each image, as one independent draw.
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
    positive, score_matrix, names, n_dropped, cluster_ids = validated_inputs(
        y_true, scores, names, nan_policy, clusters=clusters
    )
    codes = n_clusters = None
    if cluster_ids is not None:
        codes, n_clusters = cluster_codes(cluster_ids)
        check_clusters(positive, codes)
    if backend == "jax":
        if codes is not None:
            raise ValueError("backend='jax' does not take clusters; use backend='numpy'")
        from jcxr.stats import jax_backend

        auc, cov, diff_var = jax_backend.delong_moments_float64(positive, score_matrix)
    else:
        auc, cov, diff_var = delong_moments(positive, score_matrix, codes)
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
        n_clusters,
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
        positive, score_matrix, _, _, _ = validated_inputs(
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
    z, p, log10_p = z_and_p(np.array(diff), np.array(diff_sd))
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


# --------------------------------------------------------------------------- internals


def _correlated_result(
    names, auc, cov, diff_var, n_positive, n_negative, n_dropped, alpha, correction, n_clusters
) -> DeLongResult:
    k = auc.size
    zc = z_critical(alpha)
    se = np.sqrt(np.diag(cov))
    diff = auc[:, None] - auc[None, :]
    diff_sd = np.sqrt(np.maximum(diff_var, 0.0))
    z, p, log10_p = z_and_p(diff, diff_sd)
    p_adjusted = adjust_pairs(p, correction)
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
        n_clusters=n_clusters,
    )


def z_and_p(diff: np.ndarray, sd: np.ndarray):
    """Two-sided normal test of ``diff / sd`` with the sd = 0 convention (see module doc)."""
    z = standardise(diff, sd)
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
