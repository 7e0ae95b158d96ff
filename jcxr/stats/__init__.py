"""jcxr.stats: DeLong's test for ROC AUCs, exact and vectorised over models.

Needs only numpy and scipy (the optional ``backend="jax"`` imports JAX when asked for)::

    from jcxr.stats import delong
    result = delong(y_true, {"r64": s64, "r320": s320, "r600": s600})
    print(result)              # AUC +/- SE table, every pair's z, p, Holm-adjusted p, omnibus
    result.p_adjusted[0, 1]    # row vs column
"""

from jcxr.stats.bootstrap import BootstrapResult, bootstrap
from jcxr.stats.delong import (
    DeLongResult,
    Omnibus,
    UnpairedDeLongResult,
    delong,
    delong_moments,
    delong_unpaired,
    placements,
)
from jcxr.stats.multitest import adjust_pvalues
from jcxr.stats.noninferiority import NonInferiorityResult, noninferiority
from jcxr.stats.power import Binormal, PowerResult, detectable_auc, power
from jcxr.stats.result import ConfidenceInterval
from jcxr.stats.seeds import SeedComparison, compare_seeds

__all__ = [
    "Binormal",
    "BootstrapResult",
    "ConfidenceInterval",
    "DeLongResult",
    "NonInferiorityResult",
    "Omnibus",
    "PowerResult",
    "SeedComparison",
    "UnpairedDeLongResult",
    "adjust_pvalues",
    "bootstrap",
    "compare_seeds",
    "delong",
    "delong_moments",
    "delong_unpaired",
    "detectable_auc",
    "noninferiority",
    "placements",
    "power",
]
