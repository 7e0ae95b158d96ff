"""Non-inferiority of AUCs: which models are no worse than a reference by more than a margin,
and the smallest sufficient resolution.

For candidate r against the reference, with ``diff = AUC(r) - AUC(ref)`` and its standard
deviation from the comparison (paired DeLong, clustered DeLong, or the seed-aware variance with
its t degrees of freedom):

    H0: diff <= -margin        H1: diff > -margin (r loses less than ``margin``)
    statistic = (diff + margin) / sd,  p = P(T >= statistic)  (one-sided; normal or t)
    lower bound = diff - q(1 - alpha) sd  (one-sided 1 - alpha bound; r is non-inferior at
    level alpha exactly when it lies above -margin)

With ``margin = 0`` the one-sided p is half the two-sided p in the direction of the
difference, and the bound is the lower limit of the two-sided 1 - 2 alpha interval.

Across candidates the family-wise error is controlled by one of:

* ``"fixed_sequence"`` (default): candidates are tested in the order given (for resolutions:
  from the reference downward), each at ``alpha``, stopping at the first that is not
  non-inferior; every one before it is declared non-inferior. No alpha is split because the
  order is fixed before looking at the data; it asks "how far down can I go?" directly.
* ``"holm"``: Holm's step-down over all candidates, whatever their order.

The smallest sufficient model is the last non-inferior one in the given order (None: no
candidate below the reference is sufficient).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jcxr._io import json_ready
from jcxr.stats._distributions import quantile, upper_tail
from jcxr.stats._inputs import model_index
from jcxr.stats.multitest import adjust_pvalues

PROCEDURES = ("fixed_sequence", "holm")


@dataclasses.dataclass(frozen=True, eq=False)
class NonInferiorityResult:
    """Each candidate (in test order) against ``reference``: ``diff`` = AUC(candidate) -
    AUC(reference), its ``lower_bound`` (one-sided 1 - alpha), ``statistic``, one-sided
    ``pvalue`` and family-wise ``p_adjusted``, and whether it is ``non_inferior``."""

    reference: str
    candidates: tuple[str, ...]
    margin: float
    alpha: float
    procedure: str
    diff: np.ndarray
    sd: np.ndarray
    df: np.ndarray
    lower_bound: np.ndarray
    statistic: np.ndarray
    pvalue: np.ndarray
    p_adjusted: np.ndarray
    non_inferior: np.ndarray

    @property
    def smallest_sufficient(self) -> str | None:
        """The last non-inferior candidate in test order, or None."""
        kept = [c for c, ok in zip(self.candidates, self.non_inferior, strict=True) if ok]
        return kept[-1] if kept else None

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["smallest_sufficient"] = self.smallest_sufficient
        return json_ready(out)

    def __str__(self) -> str:
        procedure = "fixed sequence" if self.procedure == "fixed_sequence" else "Holm"
        lines = [
            f"Non-inferiority to {self.reference} within {self.margin:g} AUC (one-sided alpha "
            f"{self.alpha:g}, {procedure}):"
        ]
        for k, name in enumerate(self.candidates):
            verdict = "non-inferior" if self.non_inferior[k] else "not shown"
            lines.append(
                f"  {name}: dAUC {self.diff[k]:+.4f}, lower bound {self.lower_bound[k]:+.4f}, "
                f"p = {self.pvalue[k]:.4g} (adjusted {self.p_adjusted[k]:.4g}): {verdict}"
            )
        best = self.smallest_sufficient
        lines.append(
            f"smallest sufficient: {best}" if best else f"none below {self.reference} is sufficient"
        )
        return "\n".join(lines)


def noninferiority(
    result,
    *,
    reference: str | int,
    candidates: Sequence[str | int] | None = None,
    margin: float = 0.01,
    alpha: float = 0.05,
    procedure: str = "fixed_sequence",
) -> NonInferiorityResult:
    """Test every candidate of ``result`` for non-inferiority to ``reference``.

    Args:
      result: a :func:`jcxr.stats.delong` (clustered or not) or
        :func:`jcxr.stats.compare_seeds` result.
      reference: the reference model, by name or index.
      candidates: the models to test, in test order: for resolutions, from the reference
        downward (default: every other model, in the result's order).
      margin: the largest AUC loss still called non-inferior (>= 0).
      alpha: one-sided level.
      procedure: ``"fixed_sequence"`` or ``"holm"``.
    """
    if procedure not in PROCEDURES:
        raise ValueError(f"procedure must be one of {PROCEDURES}; got {procedure!r}")
    if not (isinstance(margin, float | int) and margin >= 0 and np.isfinite(margin)):
        raise ValueError(f"margin must be a number >= 0 (an AUC difference); got {margin!r}")
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a number in (0, 1); got {alpha!r}")
    names = list(result.names)
    ref = model_index(names, reference, "reference")
    if candidates is None:
        order = [k for k in range(len(names)) if k != ref]
    else:
        order = [model_index(names, c, "candidates") for c in candidates]
        if ref in order:
            raise ValueError(f"candidates include the reference {names[ref]!r}")
    if not order:
        raise ValueError("no candidate to test against the reference")
    idx = np.array(order)
    diff = np.asarray(result.diff)[idx, ref]
    sd = np.asarray(result.diff_se)[idx, ref]
    df = np.asarray(getattr(result, "df", np.full((len(names),) * 2, np.inf)))[idx, ref]
    statistic = np.where(sd > 0, (diff + margin) / np.where(sd > 0, sd, 1.0),
                         np.where(diff + margin > 0, np.inf, -np.inf))  # fmt: skip
    pvalue = upper_tail(statistic, df)
    lower = diff - quantile(1 - alpha, df) * sd
    if procedure == "holm":
        p_adjusted = adjust_pvalues(pvalue, "holm")
        non_inferior = p_adjusted <= alpha
    else:
        # fixed sequence: a candidate's adjusted p is the largest p up to it in the order
        p_adjusted = np.maximum.accumulate(pvalue)
        non_inferior = p_adjusted <= alpha
    return NonInferiorityResult(
        reference=names[ref],
        candidates=tuple(names[k] for k in order),
        margin=float(margin),
        alpha=float(alpha),
        procedure=procedure,
        diff=diff,
        sd=sd,
        df=df,
        lower_bound=lower,
        statistic=statistic,
        pvalue=pvalue,
        p_adjusted=p_adjusted,
        non_inferior=non_inferior,
    )
