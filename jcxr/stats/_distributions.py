"""Reference distributions shared by jcxr.stats' tests: the standardised difference with its
sd = 0 convention, and normal-or-t tails and quantiles (``df = inf`` means normal)."""

from __future__ import annotations

import numpy as np
from scipy import special, stats


def standardise(diff: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``diff / sd``; where ``sd`` is 0: 0 for a zero difference, else +/-inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, diff / np.where(sd > 0, sd, 1.0), np.sign(diff) * np.inf)
    return np.where((sd == 0) & (diff == 0), 0.0, z)


def upper_tail(statistic: np.ndarray, df: np.ndarray) -> np.ndarray:
    """P(T >= statistic) for Student's t with ``df`` (normal where ``df`` is inf)."""
    df = np.asarray(df, float)
    finite = np.where(np.isinf(df), 1.0, df)
    return np.where(np.isinf(df), special.ndtr(-statistic), stats.t.sf(statistic, finite))


def quantile(q: float, df: np.ndarray) -> np.ndarray:
    """The ``q`` quantile of Student's t with ``df`` (normal where ``df`` is inf)."""
    df = np.asarray(df, float)
    finite = np.where(np.isinf(df), 1.0, df)
    return np.where(np.isinf(df), special.ndtri(q), stats.t.ppf(q, finite))
