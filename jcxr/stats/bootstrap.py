"""Paired bootstrap of K correlated ROC AUCs: every pair's difference, its test and percentile
interval (pROC's ``roc.test(method="bootstrap")``, for K curves and for clustered cases).

Every replicate resamples whole clusters (or cases) with replacement, the same draw for every
model (paired). Stratified (the default, as pROC's ``boot.stratified``): units are drawn within
their stratum, so every replicate keeps the sample's numbers of positive-only, negative-only
and mixed units; without clusters that is the numbers of positives and negatives.

A replicate is a vector of case weights (how often each case was drawn), and its AUC the
weighted Mann-Whitney statistic: sorted once per model, each replicate costs O(N) with no
m x n matrix, and a block of replicates is one set of array operations. (scikit-learn's
``roc_auc_score(sample_weight=...)`` gives the same numbers one replicate at a time.)

The test is pROC's: ``D = (auc_i - auc_j) / sd(replicate differences)``, two-sided normal p.
The interval is the percentile interval of the replicate differences.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jcxr._io import json_ready
from jcxr.stats._inputs import check_clusters, check_options, validated_inputs
from jcxr.stats.delong import z_and_p
from jcxr.stats.moments import cluster_codes
from jcxr.stats.multitest import adjust_pairs
from jcxr.stats.result import ConfidenceInterval, _alpha_of

# cases x replicates held at once while weighting (float64: 8 bytes each): ~160 MB
_BLOCK_CELLS = 20_000_000


@dataclasses.dataclass(frozen=True, eq=False)
class BootstrapResult:
    """K AUCs, their bootstrap replicates, and every pair's test (row minus column)."""

    names: tuple[str, ...]
    auc: np.ndarray  # (K,) on the sample itself
    replicates: np.ndarray  # (B, K) AUC of every replicate
    statistic: np.ndarray  # (K, K) difference / its bootstrap SD
    pvalue: np.ndarray  # (K, K) two-sided, normal
    p_adjusted: np.ndarray  # (K, K) over the K (K - 1) / 2 pairs
    correction: str
    n_positive: int
    n_negative: int
    n_clusters: int | None
    stratified: bool
    seed: int
    n_degenerate: int  # replicates left out: one class missing (unstratified draws only)

    @property
    def diff(self) -> np.ndarray:
        """(K, K) ``auc[i] - auc[j]``."""
        return self.auc[:, None] - self.auc[None, :]

    @property
    def diff_se(self) -> np.ndarray:
        """(K, K) standard deviation of the replicate differences."""
        return _replicate_diff_sd(self.replicates)

    @property
    def se(self) -> np.ndarray:
        """(K,) standard deviation of each model's replicate AUCs."""
        return self.replicates.std(axis=0, ddof=1)

    def confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """(K, K) percentile interval of every difference ``auc[i] - auc[j]``."""
        tail = 100 * _alpha_of(confidence_level) / 2
        d = self.replicates[:, :, None] - self.replicates[:, None, :]
        low, high = np.percentile(d, [tail, 100 - tail], axis=0)
        return ConfidenceInterval(low, high)

    def auc_confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """(K,) percentile interval of every AUC."""
        tail = 100 * _alpha_of(confidence_level) / 2
        low, high = np.percentile(self.replicates, [tail, 100 - tail], axis=0)
        return ConfidenceInterval(low, high)

    def to_dict(self) -> dict:
        low, high = self.confidence_interval()
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.pop("replicates")
        out.update(
            n_resamples=len(self.replicates), se=self.se, diff_ci_95=np.stack([low, high], -1)
        )
        return json_ready(out)

    def __str__(self) -> str:
        kind = "stratified " if self.stratified else ""
        unit = "cases" if self.n_clusters is None else f"clusters ({self.n_clusters:,})"
        lines = [
            f"Bootstrap: {len(self.names)} correlated ROC curve(s), {len(self.replicates):,} "
            f"{kind}paired resamples of {unit}, seed {self.seed}; {self.n_positive:,} "
            f"positives, {self.n_negative:,} negatives",
            "",
        ]
        low, high = self.auc_confidence_interval()
        width = max(8, *(len(n) for n in self.names))
        lines.append(f"{'model':<{width}}  {'AUC':>7}  {'SE':>7}  {'95% CI':>17}")
        for k, name in enumerate(self.names):
            lines.append(
                f"{name:<{width}}  {self.auc[k]:7.4f}  {self.se[k]:7.4f}  "
                f"[{low[k]:.4f}, {high[k]:.4f}]"
            )
        d_low, d_high = self.confidence_interval()
        for i, j in zip(*np.triu_indices(len(self.names), 1), strict=True):
            lines.append(
                f"{self.names[i]} - {self.names[j]}: {self.diff[i, j]:+.4f} "
                f"[{d_low[i, j]:+.4f}, {d_high[i, j]:+.4f}]  D = {self.statistic[i, j]:+.2f}  "
                f"p = {self.pvalue[i, j]:.4g}  p_{self.correction} = {self.p_adjusted[i, j]:.4g}"
            )
        return "\n".join(lines)


def bootstrap(
    y_true,
    scores,
    *,
    clusters=None,
    names: Sequence[str] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    stratified: bool = True,
    correction: str = "holm",
    nan_policy: str = "raise",
) -> BootstrapResult:
    """Paired (cluster) bootstrap of K correlated AUCs on the same cases.

    Args as :func:`jcxr.stats.delong`; ``n_resamples`` replicates drawn from
    ``numpy.random.default_rng(seed)`` (the same seed gives the same replicates), within
    strata unless ``stratified=False``.
    """
    check_options(0.05, correction, nan_policy, "numpy")
    if not (isinstance(n_resamples, int) and n_resamples >= 2):
        raise ValueError(f"n_resamples must be an int >= 2; got {n_resamples!r}")
    positive, score_matrix, names, _, cluster_ids = validated_inputs(
        y_true, scores, names, nan_policy, clusters=clusters
    )
    if cluster_ids is None:
        units, n_units, n_clusters = np.arange(positive.size), positive.size, None
    else:
        units, n_units = cluster_codes(cluster_ids)
        check_clusters(positive, units)
        n_clusters = n_units
    rng = np.random.default_rng(seed)
    replicates = np.empty((n_resamples, score_matrix.shape[0]))
    # blocks of replicates bound the memory; their size depends on N only, so the same data
    # and seed always give the same draws
    block = max(1, _BLOCK_CELLS // positive.size)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        w = _replicate_weights(positive, units, n_units, stratified, rng, stop - start)
        replicates[start:stop] = weighted_aucs(positive, score_matrix, w).T
    auc = weighted_aucs(positive, score_matrix, np.ones((1, positive.size)))[:, 0]
    degenerate = ~np.all(np.isfinite(replicates), axis=1)
    replicates = replicates[~degenerate]
    statistic, pvalue, _ = z_and_p(auc[:, None] - auc[None, :], _replicate_diff_sd(replicates))
    p_adjusted = adjust_pairs(pvalue, correction)
    return BootstrapResult(
        names=tuple(names),
        auc=auc,
        replicates=replicates,
        statistic=statistic,
        pvalue=pvalue,
        p_adjusted=p_adjusted,
        correction=correction,
        n_positive=int(positive.sum()),
        n_negative=int((~positive).sum()),
        n_clusters=n_clusters,
        stratified=stratified,
        seed=seed,
        n_degenerate=int(degenerate.sum()),
    )


def weighted_aucs(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(K, B) AUC of every model under every row of case ``weights`` (B, N): the weighted
    Mann-Whitney statistic, ties counting one half; NaN where a class has no weight."""
    k = scores.shape[0]
    out = np.empty((k, weights.shape[0]))
    for row in range(k):
        order = np.argsort(scores[row], kind="stable")
        ranked = scores[row, order]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # tie groups
        w = weights[:, order]
        is_pos = positive[order]
        pos = np.add.reduceat(np.where(is_pos, w, 0.0), starts, axis=1)
        neg = np.add.reduceat(np.where(is_pos, 0.0, w), starts, axis=1)
        neg_below = np.cumsum(neg, axis=1) - neg
        wins = np.einsum("bg,bg->b", pos, neg_below + 0.5 * neg)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[row] = wins / (pos.sum(axis=1) * neg.sum(axis=1))
    out[~np.isfinite(out)] = np.nan
    return out


def _replicate_weights(positive, units, n_units, stratified, rng, n_replicates):
    """``(n_replicates, N)`` case weights: how often each case's unit was drawn."""
    has_pos = np.bincount(units, weights=positive, minlength=n_units) > 0
    has_neg = np.bincount(units, weights=~positive, minlength=n_units) > 0
    kind = has_pos.astype(int) + 2 * has_neg.astype(int)  # 1 positive, 2 negative, 3 mixed
    strata = [np.flatnonzero(kind == s) for s in (1, 2, 3)] if stratified else [np.arange(n_units)]
    drawn = [
        members[rng.integers(0, members.size, (n_replicates, members.size))]
        for members in strata
        if members.size
    ]
    drawn = np.concatenate(drawn, axis=1)  # (n_replicates, n_units) unit indices
    flat = (drawn + n_units * np.arange(n_replicates)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_replicates * n_units).reshape(n_replicates, n_units)
    return counts[:, units].astype(np.float64)


def _replicate_diff_sd(replicates: np.ndarray) -> np.ndarray:
    """(K, K) standard deviation of the replicate differences ``auc[i] - auc[j]``."""
    return (replicates[:, :, None] - replicates[:, None, :]).std(axis=0, ddof=1)
