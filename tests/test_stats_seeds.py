"""jcxr.stats.compare_seeds: reduction to DeLong with one seed, and the coverage of its
interval in a simulation with known training noise and a known true difference."""

import numpy as np
import pytest
from scipy import stats as sps

from jcxr.stats import compare_seeds, delong


def simulate(rng, *, n_cases, seeds, mu, tau, var_case, var_model, prevalence=0.3):
    """Scores of R models x S seeds: ``(mu_r + tau_rs) y + u + e_rs``. ``tau_rs`` ~ N(0, tau^2)
    is a seed's training luck in separation; ``u`` (shared by every model) and ``e_rs`` (the
    model's own) are case-level noise. A seed's population AUC is Phi((mu_r + tau_rs) / c),
    c = sqrt(2 (var_case + var_model)), so over seeds its mean is Phi(mu_r / sqrt(c^2 + tau^2))."""
    y = (rng.random(n_cases) < prevalence).astype(int)
    y[:2], y[2:4] = 1, 0
    u = rng.normal(scale=np.sqrt(var_case), size=n_cases)
    cube = np.empty((len(mu), seeds, n_cases))
    for r, m in enumerate(mu):
        shift = m + rng.normal(scale=tau, size=(seeds, 1))
        cube[r] = shift * y + u + rng.normal(scale=np.sqrt(var_model), size=(seeds, n_cases))
    c2 = 2 * (var_case + var_model)
    truth = sps.norm.cdf(np.asarray(mu) / np.sqrt(c2 + tau**2))
    return y, cube, truth


def test_one_seed_is_exactly_delong():
    rng = np.random.default_rng(0)
    y, cube, _ = simulate(rng, n_cases=300, seeds=1, mu=[1.0, 0.8, 0.5], tau=0.2,
                          var_case=0.5, var_model=0.5)  # fmt: skip
    seeds = compare_seeds(y, cube, names=["a", "b", "c"])
    plain = delong(y, cube[:, 0])
    np.testing.assert_array_equal(seeds.auc, plain.auc)
    np.testing.assert_allclose(seeds.diff_se, plain.diff_se, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(seeds.pvalue, plain.pvalue, rtol=1e-9)
    assert np.all(np.isinf(seeds.df)) and "one training seed" in str(seeds)


def test_identical_seeds_add_no_training_variance():
    rng = np.random.default_rng(1)
    y, cube, _ = simulate(rng, n_cases=300, seeds=1, mu=[1.0, 0.8], tau=0.0,
                          var_case=0.5, var_model=0.5)  # fmt: skip
    repeated = np.repeat(cube, 4, axis=1)  # four "seeds" that trained the same network
    seeds = compare_seeds(y, repeated)
    assert seeds.train_var[0, 1] == 0.0 and seeds.seed_sd[0] == 0.0
    assert seeds.diff_se[0, 1] == pytest.approx(delong(y, cube[:, 0]).diff_se[0, 1], rel=1e-9)


def test_seed_aware_interval_covers_the_true_difference():
    rng = np.random.default_rng(2026)
    replicates, covered, covered_delong = 1000, 0, 0
    for _ in range(replicates):
        y, cube, truth = simulate(rng, n_cases=400, seeds=5, mu=[1.2, 1.0], tau=0.25,
                                  var_case=0.7, var_model=0.3)  # fmt: skip
        result = compare_seeds(y, cube)
        low, high = result.confidence_interval(0.95)
        covered += bool(low[0, 1] <= truth[0] - truth[1] <= high[0, 1])
        one = delong(y, cube[:, 0]).confidence_interval(0.95)  # one seed, test noise only
        covered_delong += bool(one.low[0, 1] <= truth[0] - truth[1] <= one.high[0, 1])
    coverage, single = covered / replicates, covered_delong / replicates
    print(f"95% CI coverage over {replicates} replicates: seed-aware {coverage}, "
          f"one seed DeLong {single}")  # fmt: skip
    assert 0.93 <= coverage <= 0.97
    assert single < 0.90


def test_mapping_input_and_printing():
    rng = np.random.default_rng(3)
    y, cube, _ = simulate(rng, n_cases=200, seeds=3, mu=[1.0, 0.7], tau=0.2,
                          var_case=0.5, var_model=0.5)  # fmt: skip
    result = compare_seeds(y, {"256px": cube[0], "64px": cube[1]})
    assert result.names == ("256px", "64px") and result.seeds == 3
    assert "3 seeds" in str(result) and "256px - 64px" in str(result)
    assert result.to_dict()["per_seed_auc"][0] == pytest.approx(list(result.per_seed_auc[0]))


@pytest.mark.parametrize(
    "scores,message",
    [
        ({"a": np.zeros((2, 8)), "b": np.zeros((3, 8))}, "same seeds and cases"),
        ({"a": np.zeros(8)}, r"must be \(S, N\)"),
        (np.zeros((2, 8)), r"\(R, S, N\)"),
    ],
)
def test_bad_shapes_are_named(scores, message):
    with pytest.raises(ValueError, match=message):
        compare_seeds(np.array([1, 0] * 4), scores)
