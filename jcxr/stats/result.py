"""What :func:`jcxr.stats.delong` and :func:`jcxr.stats.delong_unpaired` return: small frozen
result objects with arrays, ``to_dict()`` (strict JSON) and a printable table.

They follow scipy.stats' conventions: ``statistic`` and ``pvalue``, and
``confidence_interval(confidence_level=0.95)`` returning a ``(low, high)`` named tuple. The
older names (``z``, ``p``, ``diff_ci`` and ``ci`` at the result's own ``alpha``) stay as
fields: ``z is statistic`` and ``p is pvalue``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
from scipy import special

from jcxr._io import json_ready


class ConfidenceInterval(NamedTuple):
    """Lower and upper bounds, as scipy.stats' ``ConfidenceInterval``."""

    low: np.ndarray | float
    high: np.ndarray | float


@dataclasses.dataclass(frozen=True)
class Omnibus:
    """Chi-square test of "all K AUCs are equal" (DeLong 1988, contrast matrix of rank K - 1)."""

    statistic: float
    df: int
    pvalue: float


@dataclasses.dataclass(frozen=True, eq=False)
class DeLongResult:
    """K correlated AUCs on the same cases and every pairwise comparison.

    Pairwise arrays are ``(K, K)`` and describe row minus column: ``z[i, j]`` tests
    ``auc[i] - auc[j]``. Diagonals are z = 0, p = 1, difference CI = [0, 0].
    """

    names: tuple[str, ...]
    auc: np.ndarray  # (K,)
    cov: np.ndarray  # (K, K) DeLong covariance of the AUCs
    se: np.ndarray  # (K,)
    ci: np.ndarray  # (K, 2) normal-approximation CI clipped to [0, 1]
    z: np.ndarray  # (K, K)
    p: np.ndarray  # (K, K) two-sided
    log10_p: np.ndarray  # (K, K) log10 of p, finite below float range
    p_adjusted: np.ndarray  # (K, K) over the K (K - 1) / 2 pairs
    diff_ci: np.ndarray  # (K, K, 2) CI of auc[i] - auc[j]
    omnibus: Omnibus | None  # None when K == 1
    n_positive: int
    n_negative: int
    n_dropped: int
    alpha: float
    correction: str
    n_clusters: int | None = None  # None: cases are independent (no clusters given)

    @property
    def statistic(self) -> np.ndarray:
        """(K, K) z of ``auc[i] - auc[j]`` (scipy.stats' name; the same array as ``z``)."""
        return self.z

    @property
    def pvalue(self) -> np.ndarray:
        """(K, K) two-sided p-value, unadjusted (scipy.stats' name; the same array as ``p``)."""
        return self.p

    def confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """(K, K) normal-approximation interval of every difference ``auc[i] - auc[j]``."""
        zc = z_critical(_alpha_of(confidence_level))
        return ConfidenceInterval(self.diff - zc * self.diff_se, self.diff + zc * self.diff_se)

    def auc_confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """(K,) normal-approximation interval of every AUC, clipped to [0, 1]."""
        zc = z_critical(_alpha_of(confidence_level))
        low, high = self.auc - zc * self.se, self.auc + zc * self.se
        return ConfidenceInterval(np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0))

    @property
    def diff(self) -> np.ndarray:
        """(K, K) ``auc[i] - auc[j]``."""
        return self.auc[:, None] - self.auc[None, :]

    @property
    def diff_se(self) -> np.ndarray:
        """(K, K) standard deviation of ``auc[i] - auc[j]``."""
        return (self.diff_ci[..., 1] - self.diff_ci[..., 0]) / (2 * z_critical(self.alpha))

    def pairs(self) -> list[dict]:
        """Every unordered pair (i < j) as a dict: names, difference, CI, z, p, adjusted p."""
        out = []
        for i, j in zip(*np.triu_indices(len(self.names), 1), strict=True):
            out.append(
                {
                    "a": self.names[i],
                    "b": self.names[j],
                    "diff": float(self.diff[i, j]),
                    "diff_ci": [float(v) for v in self.diff_ci[i, j]],
                    "z": float(self.z[i, j]),
                    "p": float(self.p[i, j]),
                    "log10_p": float(self.log10_p[i, j]),
                    "p_adjusted": float(self.p_adjusted[i, j]),
                }
            )
        return out

    def to_dict(self) -> dict:
        """JSON-ready dict (strict JSON: infinite z values become ``None``)."""
        return json_ready(
            {
                "names": list(self.names),
                "n_positive": self.n_positive,
                "n_negative": self.n_negative,
                "n_dropped": self.n_dropped,
                "alpha": self.alpha,
                "correction": self.correction,
                "n_clusters": self.n_clusters,
                "auc": self.auc,
                "se": self.se,
                "ci": self.ci,
                "cov": self.cov,
                "z": self.z,
                "p": self.p,
                "log10_p": self.log10_p,
                "p_adjusted": self.p_adjusted,
                "diff_ci": self.diff_ci,
                "pairs": self.pairs(),
                "omnibus": None if self.omnibus is None else dataclasses.asdict(self.omnibus),
            }
        )

    def __str__(self) -> str:
        level = f"{100 * (1 - self.alpha):g}%"
        dropped = f", {self.n_dropped:,} dropped (non-finite)" if self.n_dropped else ""
        method = "DeLong" if self.n_clusters is None else "DeLong, clustered (Obuchowski 1997)"
        clusters = "" if self.n_clusters is None else f" in {self.n_clusters:,} clusters"
        lines = [
            f"{method}: {len(self.names)} correlated ROC curve(s), {self.n_positive:,} "
            f"positives, {self.n_negative:,} negatives{clusters}{dropped}",
            "",
        ]
        width = max(8, *(len(n) for n in self.names))
        lines.append(f"{'model':<{width}}  {'AUC':>7}  {'SE':>7}  {level + ' CI':>17}")
        for name, auc, se, (lo, hi) in zip(self.names, self.auc, self.se, self.ci, strict=True):
            lines.append(f"{name:<{width}}  {auc:7.4f}  {se:7.4f}  [{lo:.4f}, {hi:.4f}]")
        if len(self.names) > 1:
            pw = max(12, 2 * width + 3)
            adj = f"p_{self.correction}"
            lines += [
                "",
                f"{'pair':<{pw}}  {'dAUC':>8}  {level + ' CI':>19}  {'z':>7}  {'p':>9}  {adj:>10}",
            ]
            for pair in self.pairs():
                lo, hi = pair["diff_ci"]
                label = f"{pair['a']} - {pair['b']}"
                lines.append(
                    f"{label:<{pw}}  {pair['diff']:+8.4f}  [{lo:+.4f}, {hi:+.4f}]  "
                    f"{pair['z']:+7.2f}  {_format_p(pair['p'], pair['log10_p']):>9}  "
                    f"{_format_p(pair['p_adjusted']):>10}"
                )
            om = self.omnibus
            lines += [
                "",
                f"omnibus (all AUCs equal): chi2 = {om.statistic:.3f}, df = {om.df}, "
                f"p = {_format_p(om.pvalue)}",
            ]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True, eq=False)
class UnpairedDeLongResult:
    """One AUC on each of two independent case sets, and the test of their difference (a - b)."""

    names: tuple[str, str]
    auc: np.ndarray  # (2,)
    se: np.ndarray  # (2,)
    ci: np.ndarray  # (2, 2)
    diff: float
    diff_ci: np.ndarray  # (2,)
    z: float
    p: float
    log10_p: float
    n_positive: tuple[int, int]
    n_negative: tuple[int, int]
    alpha: float

    @property
    def statistic(self) -> float:
        """z of ``auc[0] - auc[1]`` (scipy.stats' name for ``z``)."""
        return self.z

    @property
    def pvalue(self) -> float:
        """Two-sided p-value (scipy.stats' name for ``p``)."""
        return self.p

    def confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """Normal-approximation interval of ``auc[0] - auc[1]``."""
        sd = (self.diff_ci[1] - self.diff_ci[0]) / (2 * z_critical(self.alpha))
        zc = z_critical(_alpha_of(confidence_level))
        return ConfidenceInterval(self.diff - zc * sd, self.diff + zc * sd)

    def to_dict(self) -> dict:
        return json_ready({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def __str__(self) -> str:
        level = f"{100 * (1 - self.alpha):g}%"
        lines = ["DeLong (unpaired): the same model on two independent case sets", ""]
        for k, name in enumerate(self.names):
            lo, hi = self.ci[k]
            lines.append(
                f"{name:<10} AUC {self.auc[k]:.4f} +/- {self.se[k]:.4f} ({level} CI {lo:.4f}-"
                f"{hi:.4f}; {self.n_positive[k]:,} pos / {self.n_negative[k]:,} neg)"
            )
        lo, hi = self.diff_ci
        lines.append(
            f"difference {self.diff:+.4f} ({level} CI {lo:+.4f} to {hi:+.4f}), z = {self.z:+.3f}, "
            f"p = {_format_p(self.p, self.log10_p)}"
        )
        return "\n".join(lines)


def _format_p(p: float, log10_p: float | None = None) -> str:
    if p == 0.0 and log10_p is not None and math.isfinite(log10_p):
        return f"1e{log10_p:.1f}"
    if p >= 1e-4:
        return f"{p:.4f}"
    return f"{p:.2e}"


def _alpha_of(confidence_level: float) -> float:
    if not (isinstance(confidence_level, float | int) and 0.0 < confidence_level < 1.0):
        raise ValueError(f"confidence_level must be a number in (0, 1); got {confidence_level!r}")
    return 1.0 - confidence_level


def z_critical(alpha: float) -> float:
    """The two-sided normal quantile of a ``1 - alpha`` confidence interval."""
    return float(special.ndtri(1.0 - alpha / 2.0))
