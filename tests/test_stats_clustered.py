"""Clustered DeLong (Obuchowski 1997) against a by-definition implementation written here, its
exact reduction to DeLong for one case per cluster, and its coverage in a simulation."""

import json

import numpy as np
import pytest
from scipy import stats as sps

from jcxr.stats import delong


def obuchowski_by_definition(y, scores, clusters):
    """Obuchowski (1997) straight from the paper: the m x n kernel, per-image components,
    loops over clusters, the S10 / S01 / S11 sums. Returns (auc (K,), cov (K, K))."""
    k = scores.shape[0]
    pos, neg = y == 1, y == 0
    m, n = int(pos.sum()), int(neg.sum())
    ids = list(dict.fromkeys(clusters.tolist()))
    big_i = len(ids)
    i10 = len({c for c, p in zip(clusters.tolist(), pos, strict=True) if p})
    i01 = len({c for c, p in zip(clusters.tolist(), neg, strict=True) if p})
    auc = np.zeros(k)
    x_comp = np.zeros((k, big_i))
    y_comp = np.zeros((k, big_i))
    m_i = np.array([np.sum(pos & (clusters == c)) for c in ids])
    n_i = np.array([np.sum(neg & (clusters == c)) for c in ids])
    for r in range(k):
        xs, ys = scores[r, pos], scores[r, neg]
        psi = (xs[:, None] > ys[None, :]) + 0.5 * (xs[:, None] == ys[None, :])
        auc[r] = psi.sum() / (m * n)
        v10 = dict(zip(np.flatnonzero(pos), psi.sum(axis=1) / n, strict=True))
        v01 = dict(zip(np.flatnonzero(neg), psi.sum(axis=0) / m, strict=True))
        for c_index, c in enumerate(ids):
            members = np.flatnonzero(clusters == c)
            x_comp[r, c_index] = sum(v10[j] for j in members if pos[j])
            y_comp[r, c_index] = sum(v01[j] for j in members if neg[j])
    cov = np.zeros((k, k))
    for r in range(k):
        for s in range(k):
            a_r, a_s = x_comp[r] - m_i * auc[r], x_comp[s] - m_i * auc[s]
            b_r, b_s = y_comp[r] - n_i * auc[r], y_comp[s] - n_i * auc[s]
            s10 = i10 / ((i10 - 1) * m) * np.sum(a_r * a_s)
            s01 = i01 / ((i01 - 1) * n) * np.sum(b_r * b_s)
            s11_rs = big_i / (big_i - 1) * np.sum(a_r * b_s)
            s11_sr = big_i / (big_i - 1) * np.sum(a_s * b_r)
            cov[r, s] = s10 / m + s01 / n + (s11_rs + s11_sr) / (m * n)
    return auc, cov


def clustered_data(rng, n_clusters, k, *, levels=None, mixed=True):
    """Patients with 1-5 images each, a shared patient effect in every model's scores, and
    labels per image (mixed clusters) or per patient."""
    sizes = rng.integers(1, 6, n_clusters)
    clusters = np.repeat(np.arange(n_clusters), sizes)
    if mixed:
        y = rng.integers(0, 2, clusters.size)
    else:
        y = np.repeat(rng.integers(0, 2, n_clusters), sizes)
    y[:2], y[-2:] = 1, 0
    patient = rng.normal(size=n_clusters)[clusters]
    latent = y + patient + rng.normal(size=clusters.size)
    scores = latent + rng.normal(scale=rng.uniform(0.3, 1.5, (k, 1)), size=(k, clusters.size))
    if levels:
        scores = np.clip(np.round(scores), -levels, levels)
    return y, scores, clusters


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("levels", [None, 2])  # continuous, and heavy ties
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_obuchowski_by_definition(k, levels, seed):
    rng = np.random.default_rng(seed)
    y, scores, clusters = clustered_data(rng, 40, k, levels=levels)
    # mixed clusters (both classes), singletons and positive-only clusters are all present
    has = {c: set(y[clusters == c]) for c in np.unique(clusters)}
    assert any(v == {0, 1} for v in has.values()) and any(v == {1} for v in has.values())
    assert np.any(np.bincount(clusters) == 1)
    shuffled = rng.permutation(y.size)  # cluster members need not be contiguous
    y, scores, clusters = y[shuffled], scores[:, shuffled], clusters[shuffled]
    auc, cov = obuchowski_by_definition(y, scores, clusters)
    result = delong(y, scores, clusters=clusters)
    np.testing.assert_allclose(result.auc, auc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.cov, cov, rtol=0, atol=1e-10)
    diff_var = np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov
    np.testing.assert_allclose(result.diff_se**2, diff_var, rtol=0, atol=1e-10)
    assert result.n_clusters == 40


def test_string_ids_and_order_do_not_matter():
    rng = np.random.default_rng(3)
    y, scores, clusters = clustered_data(rng, 30, 3)
    names = np.array([f"patient_{c:05d}" for c in clusters], dtype=object)
    a = delong(y, scores, clusters=clusters)
    b = delong(y, scores, clusters=names)
    np.testing.assert_allclose(a.cov, b.cov, rtol=1e-13, atol=0)
    assert a.n_clusters == b.n_clusters == 30


def test_clusters_of_one_case_give_exactly_the_unclustered_result():
    rng = np.random.default_rng(4)
    y, scores, _ = clustered_data(rng, 200, 5, levels=3)
    plain = delong(y, scores)
    single = delong(y, scores, clusters=np.arange(y.size)[::-1] * 7)  # any distinct IDs
    for field in ("auc", "cov", "se", "z", "p", "p_adjusted", "diff_ci", "ci"):
        assert np.array_equal(getattr(plain, field), getattr(single, field)), field
    assert single.n_clusters == y.size and plain.n_clusters is None


def test_identical_models_stay_exactly_equal_when_clustered():
    rng = np.random.default_rng(5)
    y, scores, clusters = clustered_data(rng, 50, 2)
    result = delong(y, np.stack([scores[0], scores[0] + 3.0]), clusters=clusters)
    assert result.z[0, 1] == 0.0 and result.p[0, 1] == 1.0


def test_clustering_by_patient_widens_the_interval_when_patients_are_correlated():
    rng = np.random.default_rng(6)
    y, scores, clusters = clustered_data(rng, 300, 1, mixed=False)
    assert delong(y, scores, clusters=clusters).se[0] > 1.2 * delong(y, scores).se[0]


def test_clustered_result_prints_and_serialises_its_unit():
    rng = np.random.default_rng(7)
    y, scores, clusters = clustered_data(rng, 25, 2)
    result = delong(y, scores, clusters=clusters)
    assert "clustered (Obuchowski 1997)" in str(result) and "in 25 clusters" in str(result)
    assert json.loads(json.dumps(result.to_dict()))["n_clusters"] == 25


@pytest.mark.parametrize(
    "clusters,message",
    [
        (np.arange(5), "clusters has 5 IDs but y_true has 8 cases"),
        (np.array([0, 0, 1, 1, 2, np.nan, 3, 3]), r"1 missing ID.*first at case 5"),
        (np.array(["a", "a", "b", "", "c", "c", "d", "d"]), r"missing ID.*case 3"),
        (np.zeros(8), "at least 2 clusters holding a positive and 2 holding a negative; got 1"),
        (np.zeros((2, 4)), "1-D"),
    ],
)
def test_bad_clusters_are_rejected_naming_the_argument(clusters, message):
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match=message):
        delong(y, np.linspace(0, 1, 8), clusters=clusters)


def test_nan_policy_omit_drops_cluster_ids_with_their_cases():
    rng = np.random.default_rng(8)
    y, scores, clusters = clustered_data(rng, 40, 2)
    holed = scores.copy()
    holed[1, 5] = np.nan
    keep = np.arange(y.size) != 5
    a = delong(y, holed, clusters=clusters, nan_policy="omit")
    b = delong(y[keep], scores[:, keep], clusters=clusters[keep])
    np.testing.assert_array_equal(a.cov, b.cov)


def test_jax_backend_refuses_clusters():
    y = np.array([1, 0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="backend='jax' does not take clusters"):
        delong(y, np.linspace(0, 1, 6), clusters=[0, 0, 1, 1, 2, 2], backend="jax")


# --------------------------------------------------------------------------- simulation


def test_clustered_interval_covers_where_the_unclustered_one_does_not():
    """Patients with 1-6 images, the label a patient's (all images positive or all negative),
    a patient effect with intra-patient correlation 0.6. Every pair is between patients, so
    the population AUC is closed form: Phi(mu / sqrt(2 (var_patient + var_image)))."""
    rng = np.random.default_rng(2026)
    mu, var_patient, var_image = 1.2, 0.6, 0.4
    truth = sps.norm.cdf(mu / np.sqrt(2 * (var_patient + var_image)))
    replicates, n_patients = 2000, 300
    covered = {"clustered": 0, "unclustered": 0}
    for _ in range(replicates):
        sizes = rng.integers(1, 7, n_patients)
        clusters = np.repeat(np.arange(n_patients), sizes)
        sick = rng.random(n_patients) < 0.4
        y = sick[clusters].astype(int)
        score = (
            mu * y
            + rng.normal(scale=np.sqrt(var_patient), size=n_patients)[clusters]
            + rng.normal(scale=np.sqrt(var_image), size=clusters.size)
        )
        for name, ids in (("clustered", clusters), ("unclustered", None)):
            low, high = delong(y, score, clusters=ids).auc_confidence_interval(0.95)
            covered[name] += bool(low[0] <= truth <= high[0])
    coverage = {name: count / replicates for name, count in covered.items()}
    print(f"95% CI coverage over {replicates} replicates: {coverage}")
    assert 0.93 <= coverage["clustered"] <= 0.97
    assert coverage["unclustered"] < 0.90


# --------------------------------------------------------------------------- command line


def test_cli_clusters_by_a_numeric_id_column_and_bootstraps(tmp_path):
    import subprocess
    import sys

    rng = np.random.default_rng(9)
    y, scores, clusters = clustered_data(rng, 60, 2)
    path = tmp_path / "predictions.csv"
    lines = ["patient_id,finding,r64,r256"]
    lines += [f"{c},{y[i]},{float(scores[0, i])!r},{float(scores[1, i])!r}"
              for i, c in enumerate(clusters)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "jcxr.stats", str(path), "--label",
                               "finding", *args], capture_output=True, text=True)  # fmt: skip

    out = cli("--clusters", "patient_id", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    expected = delong(y, scores, clusters=clusters, names=["r64", "r256"])
    assert payload["names"] == ["r64", "r256"]  # the numeric ID column is not a score
    assert payload["n_clusters"] == 60
    np.testing.assert_allclose(payload["cov"], expected.cov, rtol=1e-12)
    boot = cli("--clusters", "patient_id", "--method", "bootstrap", "--n-resamples", "200")
    assert boot.returncode == 0 and "resamples of clusters (60)" in boot.stdout
    missing = cli("--clusters", "patient")
    assert missing.returncode == 2 and "no cluster column 'patient'" in missing.stderr
    path.write_text(path.read_text().replace("\n5,", "\n,", 1))
    empty = cli("--clusters", "patient_id")
    assert empty.returncode == 2 and "column 'patient_id': empty cluster ID" in empty.stderr
