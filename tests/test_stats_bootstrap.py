"""jcxr.stats.bootstrap: replicate AUCs against scikit-learn's weighted AUC, standard errors
against DeLong and Obuchowski, strata, determinism, and bad input."""

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jcxr.stats import bootstrap, delong
from jcxr.stats.bootstrap import _replicate_weights, weighted_aucs


def correlated(rng, n, k=2, *, levels=None):
    y = rng.integers(0, 2, n)
    y[:2], y[2:4] = 1, 0
    shared = y + rng.normal(size=n)
    scores = shared + rng.normal(scale=rng.uniform(0.3, 1.2, (k, 1)), size=(k, n))
    if levels:
        scores = np.clip(np.round(scores), -levels, levels)
    return y, scores


@pytest.mark.parametrize("levels", [None, 2])
def test_weighted_aucs_equal_scikit_learn_replicate_by_replicate(levels):
    rng = np.random.default_rng(0)
    y, scores = correlated(rng, 300, 3, levels=levels)
    weights = rng.integers(0, 4, (25, y.size)).astype(float)
    got = weighted_aucs(y == 1, scores, weights)
    for b in range(25):
        for k in range(3):
            want = roc_auc_score(y, scores[k], sample_weight=weights[b])
            assert got[k, b] == pytest.approx(want, abs=1e-12)


def test_standard_errors_agree_with_delong():
    rng = np.random.default_rng(1)
    y, scores = correlated(rng, 1500)
    boot, exact = bootstrap(y, scores, n_resamples=2000, seed=3), delong(y, scores)
    np.testing.assert_allclose(boot.se, exact.se, rtol=0.1)
    assert boot.diff_se[0, 1] == pytest.approx(exact.diff_se[0, 1], rel=0.1)
    assert boot.pvalue[0, 1] == pytest.approx(exact.pvalue[0, 1], abs=0.02 + 0.3 * exact.p[0, 1])
    np.testing.assert_array_equal(boot.auc, exact.auc)


def test_cluster_resampling_agrees_with_obuchowski_and_exceeds_case_resampling():
    rng = np.random.default_rng(2)
    sizes = rng.integers(1, 7, 400)
    clusters = np.repeat(np.arange(400), sizes)
    y = np.repeat(rng.integers(0, 2, 400), sizes)
    shared = y + rng.normal(size=400)[clusters]
    scores = np.stack([shared + rng.normal(size=y.size), shared + 0.5 * rng.normal(size=y.size)])
    by_cluster = bootstrap(y, scores, clusters=clusters, n_resamples=2000, seed=0)
    by_case = bootstrap(y, scores, n_resamples=2000, seed=0)
    obuchowski = delong(y, scores, clusters=clusters)
    np.testing.assert_allclose(by_cluster.se, obuchowski.se, rtol=0.12)
    assert np.all(by_cluster.se > 1.2 * by_case.se)
    assert by_cluster.n_clusters == 400 and "clusters (400)" in str(by_cluster)


def test_stratified_draws_keep_each_kind_of_unit():
    rng = np.random.default_rng(3)
    positive = np.array([1, 1, 0, 0, 1, 0, 0, 1, 0, 0], bool)
    units = np.array([0, 0, 1, 1, 2, 2, 3, 4, 5, 6])  # 0, 4 positive; 1, 3, 5, 6 negative; 2 mixed
    w = _replicate_weights(positive, units, 7, True, rng, 500)
    unit_counts = np.stack([w[:, np.flatnonzero(units == u)[0]] for u in range(7)], axis=1)
    assert np.all(unit_counts[:, [0, 4]].sum(axis=1) == 2)
    assert np.all(unit_counts[:, [1, 3, 5, 6]].sum(axis=1) == 4)
    assert np.all(unit_counts[:, 2] == 1)
    free = _replicate_weights(positive, units, 7, False, rng, 500)
    assert np.std(free[:, positive].sum(axis=1)) > 0  # unstratified: the class mix varies


def test_same_seed_same_replicates_other_seed_other():
    rng = np.random.default_rng(4)
    y, scores = correlated(rng, 200)
    a = bootstrap(y, scores, n_resamples=50, seed=7)
    b = bootstrap(y, scores, n_resamples=50, seed=7)
    c = bootstrap(y, scores, n_resamples=50, seed=8)
    np.testing.assert_array_equal(a.replicates, b.replicates)
    assert not np.array_equal(a.replicates, c.replicates)


def test_intervals_results_and_json():
    rng = np.random.default_rng(5)
    y, scores = correlated(rng, 400, 3)
    result = bootstrap(y, scores, n_resamples=400, names=["r64", "r128", "r256"])
    low, high = result.confidence_interval(0.95)
    assert np.all(low <= result.diff + 1e-12) and np.all(result.diff <= high + 1e-12)
    narrow = result.confidence_interval(0.5)
    assert np.all(narrow.high - narrow.low <= high - low + 1e-12)
    assert np.allclose(result.statistic, -result.statistic.T)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["n_resamples"] == 400 and data["names"] == ["r64", "r128", "r256"]
    assert "r64 - r128" in str(result)


def test_unstratified_draws_without_a_class_are_left_out_and_counted():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    scores = np.linspace(0, 1, 10)
    result = bootstrap(y, scores, n_resamples=300, stratified=False, seed=0)
    assert result.n_degenerate > 0
    assert len(result.replicates) == 300 - result.n_degenerate
    assert np.all(np.isfinite(result.replicates))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"n_resamples": 1}, "n_resamples must be an int >= 2"),
        ({"clusters": [0, 1, 2]}, "clusters has 3 IDs but y_true has 6 cases"),
        ({"correction": "sidak"}, "correction must be one of"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap([1, 0, 1, 0, 1, 0], np.linspace(0, 1, 6), **kwargs)
