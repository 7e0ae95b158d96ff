"""Power and sample size for ROC AUCs: one AUC against 0.5, or two correlated AUCs.

The sample-size equation is Obuchowski & McClish (1997), "Sample size determination for
diagnostic accuracy studies involving binormal ROC curve indices", Stat Med 16:1529-1542,
eq. 2, the approach R's pROC ``power.roc.test`` implements:

    n_positive = (z_alpha sqrt(V0) + z_beta sqrt(VA))^2 / delta^2

with ``V0`` and ``VA`` the variance of the AUC difference (per positive case: variance times
n_positive) under the null and the alternative, ``delta`` the difference, and ``kappa`` =
negatives / positives. ``V0 = 2 var_1 - 2 cov_12`` takes curve 1 as the null (pROC's choice).
Given two of n, power and alpha it solves for the third. The variances come from:

* a finished comparison (:class:`jcxr.stats.DeLongResult`, clustered or not): its covariance
  scaled to one positive, so the answer assumes the same case mix (and cluster structure);
* binormal parameters ``(a, b)`` of both curves and the score correlations among positives
  (``r_positive``) and negatives (``r_negative``): Obuchowski & McClish 1997 eq. 4-5, for the
  full AUC or the partial AUC over a false-positive-rate range;
* one AUC against 0.5 (``auc=``): Obuchowski et al. (2004) eq. 3,
  ``V(A) = 0.0099 exp(-A'^2 / 2) ((5 A'^2 + 8) + (A'^2 + 8) / kappa)`` with
  ``A' = 1.414 Phi^-1(A)``, and ``V0 = 0.0792 (1 + 1 / kappa)``.

Counts are returned unrounded (as pROC does); round up to plan a study.
"""

from __future__ import annotations

import dataclasses
import math

from scipy import optimize, special

from jcxr.stats._inputs import model_index

ALTERNATIVES = ("two-sided", "one-sided")


@dataclasses.dataclass(frozen=True)
class Binormal:
    """Two binormal ROC curves on the same cases: ``TPR = Phi(a + b Phi^-1(FPR))`` each, their
    scores' correlations among positives and among negatives, and optionally a partial-AUC
    false-positive-rate range ``fpr = (low, high)``."""

    a1: float
    b1: float
    a2: float
    b2: float
    r_positive: float
    r_negative: float
    fpr: tuple[float, float] | None = None

    @property
    def aucs(self) -> tuple[float, float]:
        """The two (partial) AUCs the parameters imply."""
        return _binormal_auc(self.a1, self.b1, self.fpr), _binormal_auc(self.a2, self.b2, self.fpr)


@dataclasses.dataclass(frozen=True)
class PowerResult:
    """A solved power / sample-size problem. ``n_positive`` and ``n_negative`` are case counts
    (images, or the comparison's unit), unrounded."""

    n_positive: float
    n_negative: float
    power: float
    alpha: float
    delta: float
    kappa: float
    alternative: str
    method: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.method}: delta AUC = {self.delta:+.4f}, {self.alternative} alpha = "
            f"{self.alpha:.4g}, power = {self.power:.4f}\n"
            f"needs {self.n_positive:,.1f} positives and {self.n_negative:,.1f} negatives "
            f"(kappa = {self.kappa:.4g} negatives per positive); round up"
        )


def power(
    result=None,
    *,
    pair: tuple = (0, 1),
    auc: float | None = None,
    binormal: Binormal | None = None,
    delta: float | None = None,
    n_positive: float | None = None,
    kappa: float | None = None,
    power: float | None = None,
    alpha: float | None = 0.05,
    alternative: str = "two-sided",
) -> PowerResult:
    """Power, sample size or significance level for an AUC comparison: leave the one to solve
    for as ``None`` (with a finished ``result`` and nothing else, its own n gives the power).

    Exactly one variance source:
      result: a :class:`DeLongResult`; ``pair`` (indices or names) picks the two curves, the
        first being the null. ``kappa`` defaults to the result's negatives per positive.
      binormal: a :class:`Binormal`; ``delta`` defaults to the AUC difference it implies.
      auc: one AUC, tested against 0.5.

    Args:
      n_positive: number of positive cases (negatives = ``kappa * n_positive``).
      kappa: negatives per positive (default 1, or the result's).
      power: 1 - beta, in (0, 1).
      alpha: significance level, in (0, 1).
      alternative: ``"two-sided"`` or ``"one-sided"``.
    """
    sources = [name for name, v in (("result", result), ("binormal", binormal), ("auc", auc))
               if v is not None]  # fmt: skip
    if len(sources) != 1:
        raise ValueError(
            f"give exactly one of result=, binormal= or auc= as the variance source; got "
            f"{sources or 'none'}"
        )
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}; got {alternative!r}")
    for name, value in (("power", power), ("alpha", alpha)):
        if value is not None and not (isinstance(value, float | int) and 0.0 < value < 1.0):
            raise ValueError(f"{name} must be a number in (0, 1) or None; got {value!r}")
    if kappa is not None and not kappa > 0:
        raise ValueError(f"kappa (negatives per positive) must be > 0; got {kappa!r}")
    if n_positive is not None and not n_positive > 0:
        raise ValueError(f"n_positive must be > 0 or None; got {n_positive!r}")
    if result is not None:
        if n_positive is None and power is None:
            n_positive = result.n_positive
        kappa = kappa or result.n_negative / result.n_positive
        delta, v0, va, method = _from_result(result, pair, delta, kappa)
    elif binormal is not None:
        kappa = kappa or 1.0
        delta, v0, va, method = _from_binormal(binormal, delta, kappa)
    else:
        if not 0.0 < auc < 1.0:
            raise ValueError(f"auc must lie in (0, 1); got {auc!r}")
        kappa = kappa or 1.0
        delta, v0, va = auc - 0.5, 0.0792 * (1 + 1 / kappa), _one_auc_variance(auc, kappa)
        method = "One AUC against 0.5 (Obuchowski et al. 2004)"
    unknown = [name for name, v in (("n_positive", n_positive), ("power", power),
                                    ("alpha", alpha)) if v is None]  # fmt: skip
    if len(unknown) != 1:
        raise ValueError(
            f"leave exactly one of n_positive, power and alpha as None to solve for it; "
            f"{unknown or 'none'} are None"
        )
    if delta == 0:
        raise ValueError("the AUC difference is 0: no sample size detects it")
    if not va > 0:
        raise ValueError(
            f"the AUC difference has variance {va:g}: the two curves rank every case alike, so "
            "no power calculation applies"
        )
    if not v0 > 0:
        # V0 = 2 (var_1 - cov_12) is not positive when the null curve varies less than it
        # covaries with the other (pROC returns NaN here); the alternative's variance stands in
        v0 = va
        method += "; V0 = VA (the null variance 2 (var_1 - cov_12) was not positive)"
    sides = 2.0 if alternative == "two-sided" else 1.0
    root_v0, root_va, effect = math.sqrt(v0), math.sqrt(va), abs(delta)
    if n_positive is None:
        z_alpha, z_beta = special.ndtri(1 - alpha / sides), special.ndtri(power)
        n_positive = (z_alpha * root_v0 + z_beta * root_va) ** 2 / effect**2
    elif power is None:
        z_alpha = special.ndtri(1 - alpha / sides)
        power = special.ndtr((math.sqrt(n_positive) * effect - z_alpha * root_v0) / root_va)
    else:
        z_beta = special.ndtri(power)
        z_alpha = (math.sqrt(n_positive) * effect - z_beta * root_va) / root_v0
        alpha = sides * special.ndtr(-z_alpha)
    return PowerResult(
        n_positive=float(n_positive),
        n_negative=float(kappa * n_positive),
        power=float(power),
        alpha=float(alpha),
        delta=float(delta),
        kappa=float(kappa),
        alternative=alternative,
        method=method,
    )


def detectable_auc(
    n_positive: float, *, kappa: float = 1.0, power: float = 0.8, alpha: float = 0.05,
    alternative: str = "two-sided",
) -> float:  # fmt: skip
    """The smallest AUC above 0.5 that ``n_positive`` positives detect with ``power``
    (Obuchowski et al. 2004's one-curve variance; pROC's ``power.roc.test`` without ``auc``)."""

    sides = 2.0 if alternative == "two-sided" else 1.0
    z_alpha, z_beta = special.ndtri(1 - alpha / sides), special.ndtri(power)
    root_v0 = math.sqrt(0.0792 * (1 + 1 / kappa))

    def shortfall(a: float) -> float:
        root_va = math.sqrt(_one_auc_variance(a, kappa))
        return (z_alpha * root_v0 + z_beta * root_va) ** 2 / (a - 0.5) ** 2 - n_positive

    return float(optimize.brentq(shortfall, 0.5 + 1e-9, 1 - 1e-12, xtol=1e-12))


def _from_result(result, pair, delta, kappa):
    i, j = (model_index(result.names, p, "pair") for p in pair)
    if i == j:
        raise ValueError(f"pair names one curve twice: {pair!r}")
    n = result.n_positive
    var_i, var_j, cov_ij = result.cov[i, i] * n, result.cov[j, j] * n, result.cov[i, j] * n
    observed = float(result.auc[i] - result.auc[j])
    unit = "" if result.n_clusters is None else ", clustered"
    method = f"Two correlated AUCs, {result.names[i]} vs {result.names[j]} (DeLong{unit})"
    return (
        (observed if delta is None else delta),
        2 * var_i - 2 * cov_ij,
        (var_i + var_j - 2 * cov_ij),
        method,
    )


def _from_binormal(p: Binormal, delta, kappa):
    f1, g1 = _f_and_g(p.a1, p.b1, p.fpr)
    f2, g2 = _f_and_g(p.a2, p.b2, p.fpr)
    var1 = _binormal_var(f1, g1, p.a1, p.b1, kappa)
    var2 = _binormal_var(f2, g2, p.a2, p.b2, kappa)
    cov12 = (
        f1 * f2 * (p.r_positive + p.r_negative * p.b1 * p.b2 / kappa
                   + p.r_positive**2 * p.a1 * p.a2 / 2)
        + g1 * g2 * p.b1 * p.b2 * (p.r_negative**2 + kappa * p.r_positive**2) / (2 * kappa)
        + f1 * g2 * p.r_positive**2 * p.a1 * p.b2 / 2
        + f2 * g1 * p.r_positive**2 * p.a2 * p.b1 / 2
    )  # fmt: skip
    if delta is None:
        auc1, auc2 = p.aucs
        delta = auc1 - auc2
    area = "AUC" if p.fpr is None else f"partial AUC, FPR {p.fpr[0]:g}-{p.fpr[1]:g}"
    method = f"Two correlated binormal curves ({area}; Obuchowski & McClish 1997)"
    return delta, 2 * var1 - 2 * cov12, var1 + var2 - 2 * cov12, method


def _binormal_var(f, g, a, b, kappa):
    """Obuchowski & McClish 1997 eq. 4, per positive case."""
    return f**2 * (1 + b**2 / kappa + a**2 / 2) + g**2 * b**2 * (1 + kappa) / (2 * kappa)


def _f_and_g(a: float, b: float, fpr):
    """Derivatives of the (partial) binormal AUC with respect to ``a`` and ``b``.

    With ``c(e) = (Phi^-1(e) + a b / (1 + b^2)) sqrt(1 + b^2)`` at the range's ends:
    ``f = E / sqrt(2 pi (1 + b^2)) [Phi(c_high) - Phi(c_low)]`` and
    ``g = E [exp(-c_low^2 / 2) - exp(-c_high^2 / 2)] / (2 pi (1 + b^2))
    - a b E / sqrt(2 pi (1 + b^2)^3) [Phi(c_high) - Phi(c_low)]``, ``E = exp(-a^2 / (2 (1 +
    b^2)))``; the full AUC is the range (0, 1).
    """
    low, high = sorted(fpr) if fpr is not None else (0.0, 1.0)
    s = 1 + b**2
    e = math.exp(-(a**2) / (2 * s))
    c_low, c_high = ((special.ndtri(x) + a * b / s) * math.sqrt(s) for x in (low, high))
    mass = special.ndtr(c_high) - special.ndtr(c_low)
    f = e / math.sqrt(2 * math.pi * s) * mass
    tails = math.exp(-(c_low**2) / 2) - math.exp(-(c_high**2) / 2)
    g = e * tails / (2 * math.pi * s) - a * b * e / math.sqrt(2 * math.pi * s**3) * mass
    return f, g


def _binormal_auc(a: float, b: float, fpr) -> float:
    """Area under ``Phi(a + b Phi^-1(x))`` over the FPR range (the whole of it: the full AUC)."""
    if fpr is None:
        return float(special.ndtr(a / math.sqrt(1 + b**2)))
    from scipy import integrate

    low, high = sorted(fpr)
    value, _ = integrate.quad(lambda x: special.ndtr(a + b * special.ndtri(x)), low, high)
    return float(value)


def _one_auc_variance(auc: float, kappa: float) -> float:
    """Obuchowski et al. 2004 eq. 3: the variance of one AUC, per positive case."""
    a = special.ndtri(auc) * 1.414
    return 0.0099 * math.exp(-(a**2) / 2) * ((5 * a**2 + 8) + (a**2 + 8) / kappa)
