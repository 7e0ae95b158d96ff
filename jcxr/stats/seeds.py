"""Comparing models trained with several random seeds: test-set sampling and training
randomness in one interval.

One trained network is one draw from its training procedure; a difference between two
resolutions should hold for the procedure, not for one lucky seed. With R models (e.g.
resolutions) each trained with the same S seeds and scored on the same N cases (clusters
allowed), :func:`compare_seeds` reports per model the seed-mean AUC, its between-seed SD and a
combined interval, and tests every pair on the seed-mean difference

    d = mean_s (AUC[a, s] - AUC[b, s])
    var(d) = V_test + sigma2_train / S

* ``V_test``: the (clustered) DeLong variance of the contrast ``d`` over all R x S score
  vectors at once, so every covariance between seeds and models on the shared cases counts.
* ``sigma2_train``: the variance of a seed's population-level difference, by moments: the
  sample variance of the S per-seed differences ``d_s`` minus what test-set sampling alone
  puts between seeds (mean DeLong variance of a ``d_s`` minus their mean covariance), floored
  at 0. Left uncorrected, ``var_s(d_s)`` would count each model's own case-level noise twice.
* the interval and p-value use Student's t with Welch-Satterthwaite degrees of freedom
  ``(S - 1) (var(d) / (var_s(d_s) / S))^2``: the seed term is estimated from S values only.

With S = 1 there is no training term: the result is (clustered) DeLong's, normal, and says so.
The derivation and the simulation that checks the coverage are in docs/statistics.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from jcxr._io import json_ready
from jcxr.stats._distributions import quantile, standardise, upper_tail
from jcxr.stats.delong import delong
from jcxr.stats.multitest import adjust_pairs
from jcxr.stats.result import ConfidenceInterval, _alpha_of


@dataclasses.dataclass(frozen=True, eq=False)
class SeedComparison:
    """R models x S seeds on the same cases. Per model (R,): ``auc`` (seed mean), ``seed_sd``
    (between-seed SD of the AUC), ``se`` (combined); per pair (R, R), row minus column:
    ``diff``, ``diff_se`` (combined), ``df``, ``statistic`` (t), ``pvalue``, ``p_adjusted``."""

    names: tuple[str, ...]
    seeds: int
    auc: np.ndarray
    seed_sd: np.ndarray
    se: np.ndarray
    auc_df: np.ndarray
    per_seed_auc: np.ndarray  # (R, S)
    diff: np.ndarray
    diff_se: np.ndarray
    test_var: np.ndarray  # (R, R) V_test of each difference
    train_var: np.ndarray  # (R, R) sigma2_train / S of each difference
    df: np.ndarray
    statistic: np.ndarray
    pvalue: np.ndarray
    p_adjusted: np.ndarray
    correction: str
    n_positive: int
    n_negative: int
    n_clusters: int | None

    @property
    def method(self) -> str:
        base = "DeLong" if self.n_clusters is None else "clustered DeLong (Obuchowski 1997)"
        if self.seeds == 1:
            return f"{base}, one training seed: test-set sampling only"
        return f"{base} + between-seed variance over {self.seeds} seeds, Welch-Satterthwaite t"

    def confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """(R, R) interval of every seed-mean difference (t with ``df``; normal when inf)."""
        q = quantile(1 - _alpha_of(confidence_level) / 2, self.df)
        return ConfidenceInterval(self.diff - q * self.diff_se, self.diff + q * self.diff_se)

    def auc_confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """(R,) interval of every seed-mean AUC, clipped to [0, 1]."""
        q = quantile(1 - _alpha_of(confidence_level) / 2, self.auc_df)
        return ConfidenceInterval(
            np.clip(self.auc - q * self.se, 0, 1), np.clip(self.auc + q * self.se, 0, 1)
        )

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        low, high = self.confidence_interval()
        a_low, a_high = self.auc_confidence_interval()
        out.update(method=self.method, diff_ci_95=np.stack([low, high], -1),
                   auc_ci_95=np.stack([a_low, a_high], -1))  # fmt: skip
        return json_ready(out)

    def __str__(self) -> str:
        unit = "" if self.n_clusters is None else f" in {self.n_clusters:,} clusters"
        lines = [
            f"{self.method}: {len(self.names)} models, {self.n_positive:,} positives, "
            f"{self.n_negative:,} negatives{unit}",
            "",
            f"{'model':<10}  {'mean AUC':>8}  {'seed SD':>7}  {'SE':>7}  {'95% CI':>17}",
        ]
        low, high = self.auc_confidence_interval()
        for k, name in enumerate(self.names):
            lines.append(
                f"{name:<10}  {self.auc[k]:8.4f}  {self.seed_sd[k]:7.4f}  {self.se[k]:7.4f}  "
                f"[{low[k]:.4f}, {high[k]:.4f}]"
            )
        d_low, d_high = self.confidence_interval()
        for i, j in zip(*np.triu_indices(len(self.names), 1), strict=True):
            df = "inf" if np.isinf(self.df[i, j]) else f"{self.df[i, j]:.1f}"
            lines.append(
                f"{self.names[i]} - {self.names[j]}: {self.diff[i, j]:+.4f} "
                f"[{d_low[i, j]:+.4f}, {d_high[i, j]:+.4f}]  t = {self.statistic[i, j]:+.2f} "
                f"(df {df})  p = {self.pvalue[i, j]:.4g}  p_{self.correction} = "
                f"{self.p_adjusted[i, j]:.4g}"
            )
        return "\n".join(lines)


def compare_seeds(
    y_true,
    scores,
    *,
    clusters=None,
    names=None,
    correction: str = "holm",
    nan_policy: str = "raise",
) -> SeedComparison:
    """Compare R models, each trained with the same S >= 1 seeds, on the same N cases.

    Args:
      y_true: ``(N,)`` 0/1 labels.
      scores: ``(R, S, N)`` array, or a mapping ``name -> (S, N)``; seed ``s`` of every model
        is paired (trained with the same seed), which is how a sweep trains its cells.
      clusters: ``(N,)`` patient or study IDs, or None (see :func:`jcxr.stats.delong`).
    """
    cube, names = _score_cube(scores, names)
    r, s, n = cube.shape
    flat_names = [f"{name}#seed{k}" for name in names for k in range(s)]
    base = delong(y_true, cube.reshape(r * s, n), clusters=clusters, names=flat_names,
                  correction="none", nan_policy=nan_policy)  # fmt: skip
    per_seed = base.auc.reshape(r, s)
    cov = base.cov
    auc = per_seed.mean(axis=1)
    block = np.kron(np.eye(r), np.full((1, s), 1.0 / s))  # (R, R S): seed means
    auc_test_var = np.einsum("ri,ij,rj->r", block, cov, block)
    if s > 1:
        seed_var = per_seed.var(axis=1, ddof=1)
        spread = np.array([_test_spread(cov, _seed_rows(k, s, r)) for k in range(r)])
        auc_train = np.maximum(seed_var - spread, 0.0) / s
        auc_df = _satterthwaite(auc_test_var + auc_train, seed_var / s, s)
    else:
        seed_var = np.zeros(r)
        auc_train, auc_df = np.zeros(r), np.full(r, np.inf)
    diff = auc[:, None] - auc[None, :]
    test_var, train_var, df = np.zeros((r, r)), np.zeros((r, r)), np.full((r, r), np.inf)
    for i, j in zip(*np.triu_indices(r, 1), strict=True):
        contrast = _seed_rows(i, s, r) - _seed_rows(j, s, r)  # (S, R S): d_s
        test_var[i, j] = contrast.mean(axis=0) @ cov @ contrast.mean(axis=0)
        if s > 1:
            d = contrast @ base.auc
            raw = d.var(ddof=1)
            train_var[i, j] = max(raw - _test_spread(cov, contrast), 0.0) / s
            df[i, j] = _satterthwaite(test_var[i, j] + train_var[i, j], raw / s, s)
    for table in (test_var, train_var, df):
        table.T[np.triu_indices(r, 1)] = table[np.triu_indices(r, 1)]
    diff_se = np.sqrt(test_var + train_var)
    statistic, pvalue = _t_test(diff, diff_se, df)
    p_adjusted = adjust_pairs(pvalue, correction)
    return SeedComparison(
        names=tuple(names),
        seeds=s,
        auc=auc,
        seed_sd=np.sqrt(seed_var),
        se=np.sqrt(auc_test_var + auc_train),
        auc_df=auc_df,
        per_seed_auc=per_seed,
        diff=diff,
        diff_se=diff_se,
        test_var=test_var,
        train_var=train_var,
        df=df,
        statistic=statistic,
        pvalue=pvalue,
        p_adjusted=p_adjusted,
        correction=correction,
        n_positive=base.n_positive,
        n_negative=base.n_negative,
        n_clusters=base.n_clusters,
    )


def _score_cube(scores, names):
    if isinstance(scores, Mapping):
        if names is not None:
            raise ValueError("names are taken from the scores mapping; do not pass both")
        names = [str(k) for k in scores]
        arrays = [np.asarray(v, dtype=np.float64) for v in scores.values()]
        for name, a in zip(names, arrays, strict=True):
            if a.ndim != 2:
                raise ValueError(
                    f"scores[{name!r}] must be (S, N): one row per training seed; got shape "
                    f"{a.shape}"
                )
        shapes = {name: a.shape for name, a in zip(names, arrays, strict=True)}
        if len(set(shapes.values())) > 1:
            raise ValueError(
                f"every model needs the same seeds and cases; got (S, N) shapes {shapes}"
            )
        cube = np.stack(arrays)
    else:
        cube = np.asarray(scores, dtype=np.float64)
        if cube.ndim != 3:
            raise ValueError(f"scores must be (R, S, N) or a mapping; got shape {cube.shape}")
        names = [str(k) for k in range(cube.shape[0])] if names is None else list(names)
    if cube.shape[0] == 0 or cube.shape[1] == 0:
        raise ValueError(f"scores need at least one model and one seed; got shape {cube.shape}")
    return cube, names


def _seed_rows(model: int, seeds: int, models: int) -> np.ndarray:
    """(S, R S) selector of one model's per-seed AUCs among all R x S."""
    rows = np.zeros((seeds, seeds * models))
    rows[np.arange(seeds), model * seeds + np.arange(seeds)] = 1.0
    return rows


def _test_spread(cov: np.ndarray, rows: np.ndarray) -> float:
    """Expected between-seed sample variance of ``rows @ auc`` from test-set sampling alone:
    mean variance minus mean covariance of the S contrasts (Sigma = rows cov rows^T)."""
    sigma = rows @ cov @ rows.T
    s = sigma.shape[0]
    mean_var = np.trace(sigma) / s
    mean_cov = (sigma.sum() - np.trace(sigma)) / (s * (s - 1))
    return float(mean_var - mean_cov)


def _satterthwaite(total, seed_term, seeds):
    """Degrees of freedom when only ``seed_term`` (a variance over ``seeds`` values) is
    estimated with error: ``(S - 1) (total / seed_term)^2``; infinite where it is 0."""
    total, seed_term = np.asarray(total, float), np.asarray(seed_term, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (seeds - 1) * (total / seed_term) ** 2
    return np.where(seed_term > 0, df, np.inf)


def _t_test(diff, se, df):
    t = standardise(diff, se)
    return t, np.minimum(2 * upper_tail(np.abs(t), df), 1.0)
