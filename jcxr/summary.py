"""The sweep's results in words: the console summary and the sentences the report, the W&B
report and the console share (the smallest sufficient resolution, the test-set size for 80%
power)."""

from __future__ import annotations

from jcxr.convergence import describe
from jcxr.results import Comparison, SweepResult


def console_summary(result: SweepResult) -> str:
    """The console view: per label the AUC per resolution, every pair's test, the unit of
    analysis and the test-set size for 80% power."""
    lines = []
    for label, comp in result.comparisons.items():
        lines.append(
            f"\n{label} ({comp.arch}, {comp.seed_text}, {comp.split_text}: "
            f"{comp.n_positive} positive / {comp.n_negative} negative)"
        )
        lines.append(f"  {comp.method}, {comp.unit_text}")
        seed_sd = comp.seed_sd or (None,) * len(comp.auc)
        head = f"  {'resolution':>10}  {'AUC':>6}  {'SD':>6}"
        lines.append(head + ("  seed SD" if comp.seed_sd else ""))
        for r, a, s, sd in zip(comp.resolutions, comp.auc, comp.se, seed_sd, strict=True):
            lines.append(f"  {r:>8}px  {a:6.3f}  {s:6.3f}" + ("" if sd is None else f"  {sd:7.3f}"))
        for pair in comp.pairs():
            lines.append(
                f"  {pair.high}px vs {pair.low}px: dAUC {pair.difference:+.3f}  p = {pair.p:.2g}  "
                f"({comp.correction} {pair.p_adjusted:.2g})"
            )
        lines.append(f"  best resolution: {comp.best_resolution}px")
        if comp.sufficient is not None:
            lines.append(f"  {sufficiency_sentence(comp)}")
        if comp.power_80 is not None:
            lines.append(f"  {power_sentence(comp)}")
        if label in result.observers:
            lines.append(f"  {observer_sentence(result.observers[label])}")
        for warning in convergence_warnings(result, comp):
            lines.append(f"  check: {warning}")
    return "\n".join(lines)


def observer_sentence(observer: dict) -> str:
    """The phantoms' reference observer in one line: its AUC at each resolution."""
    aucs = ", ".join(f"{r} px {a:.3f}" for r, a in zip(observer["resolutions"], observer["auc"],
                                                         strict=True))  # fmt: skip
    return f"reference observer ({observer['observer']}): AUC {aucs}"


def convergence_warnings(result: SweepResult, comp: Comparison) -> list[str]:
    """One line per flagged cell behind ``comp`` (a pooled cell for k-fold: its folds' flags),
    e.g. "64 px, seed 0: still improving: the best epoch is the last"."""
    seeds = comp.seeds or (comp.seed,)
    return [
        f"{c.cell.resolution} px, seed {c.cell.seed}: {describe(c.flags)}"
        for c in result.cells
        if c.flags
        and c.cell.fold is None
        and (c.cell.label, c.cell.arch) == (comp.label, comp.arch)
        and c.cell.seed in seeds
        and c.cell.resolution in comp.resolutions
    ]


def sufficiency_sentence(comp: Comparison) -> str:
    """The answer in one line, e.g. "Mass: 128 px is sufficient: non-inferior to 320 px
    (best AUC) within 0.01 AUC (dAUC -0.004, one-sided 95% lower bound -0.009, p = 0.03)"."""
    s = comp.sufficient
    rule = "best AUC" if s["reference_rule"] == "best AUC" else "the fixed reference"
    ref = f"{s['reference']} px ({rule})"
    level = f"one-sided {1 - s['alpha']:.0%}"
    if not s["tests"]:
        return (
            f"{comp.label}: {s['reference']} px, the lowest resolution trained, has the best AUC."
        )
    if s["smallest"] is None:
        first = s["tests"][0]
        return (
            f"{comp.label}: {ref} is the smallest sufficient resolution: none below it is "
            f"non-inferior within {s['margin']:g} AUC ({first['resolution']} px: dAUC "
            f"{first['diff']:+.3f}, {level} lower bound {first['lower_bound']:+.3f}, "
            f"p = {first['p']:.2g})."
        )
    t = next(t for t in s["tests"] if t["resolution"] == s["smallest"])
    return (
        f"{comp.label}: {s['smallest']} px is sufficient: non-inferior to {ref} within "
        f"{s['margin']:g} AUC (dAUC {t['diff']:+.3f}, {level} lower bound "
        f"{t['lower_bound']:+.3f}, p = {t['p_adjusted']:.2g}, {s['procedure'].replace('_', ' ')})."
    )


def power_sentence(comp: Comparison) -> str:
    """One sentence: the test-set size that detects the best resolution's lead over the
    reference at 80% power (two-sided alpha 0.05), against this test set's."""
    p = comp.power_80
    if p["n_positive"] is None:
        return (
            f"The reference resolution ({p['reference']}px) has the highest AUC: no lead to power."
        )
    have = f"this test set has {comp.n_positive:,} / {comp.n_negative:,}"
    need = f"{p['n_positive']:,.0f} positive and {p['n_negative']:,.0f} negative {comp.case_unit}s"
    if p["n_clusters"] is not None:
        need += f" (about {p['n_clusters']:,.0f} {comp.cluster_by}s)"
        have += f" in {comp.n_clusters:,} {comp.cluster_by}s"
    return (
        f"To detect {p['best']}px's dAUC {p['delta']:+.4f} over {p['reference']}px at "
        f"{p['power']:.0%} power (two-sided alpha {p['alpha']:g}): {need}; {have}."
    )
