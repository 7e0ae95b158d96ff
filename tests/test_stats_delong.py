"""jcxr.stats.delong against independent references: brute force, scikit-learn, bootstrap."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests

from jcxr.stats import adjust_pvalues, delong, delong_unpaired, placements


def brute_force_delong(y, scores):
    """DeLong, DeLong & Clarke-Pearson (1988) by definition: O(m n) kernel per model."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10 = psi.mean(axis=2)  # (K, m)
    v01 = psi.mean(axis=1)  # (K, n)
    auc = psi.mean(axis=(1, 2))
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return auc, s10 / m + s01 / n


def tied_data(rng, n_cases, k, levels=6):
    """Correlated scores on few distinct values, so ties are everywhere."""
    y = rng.integers(0, 2, n_cases)
    y[:2], y[2:4] = 1, 0
    latent = y + rng.normal(size=n_cases)
    scores = np.round(latent + rng.normal(scale=rng.uniform(0.2, 2.0, (k, 1)), size=(k, n_cases)))
    return y, np.clip(scores, -levels // 2, levels // 2)


@pytest.mark.parametrize("k", [1, 2, 5, 9])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force_definition_with_heavy_ties(k, seed):
    y, scores = tied_data(np.random.default_rng(seed), 157, k)
    result = delong(y, scores)
    auc, cov = brute_force_delong(y, scores)
    np.testing.assert_allclose(result.auc, auc, rtol=0, atol=1e-13)
    np.testing.assert_allclose(result.cov, cov, rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(result.se, np.sqrt(np.diag(cov)), rtol=1e-10)
    for i in range(k):
        for j in range(k):
            var = cov[i, i] + cov[j, j] - 2 * cov[i, j]
            if i == j or var < 1e-15:
                continue
            z = (auc[i] - auc[j]) / math.sqrt(var)
            assert result.z[i, j] == pytest.approx(z, rel=1e-8)
            assert result.p[i, j] == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-8)


def test_matches_brute_force_without_ties():
    rng = np.random.default_rng(31)
    y = rng.integers(0, 2, 211)
    scores = y + rng.normal(size=(4, 211))  # continuous: the tie-free fast path
    result = delong(y, scores)
    auc, cov = brute_force_delong(y, scores)
    np.testing.assert_allclose(result.auc, auc, atol=1e-13)
    np.testing.assert_allclose(result.cov, cov, rtol=1e-10)


def test_models_differing_in_one_case_get_the_exact_small_variance():
    rng = np.random.default_rng(32)
    y = rng.integers(0, 2, 300)
    a = y + rng.normal(size=300)
    b = a.copy()
    lowest_positive = np.flatnonzero(y == 1)[np.argmin(a[y == 1])]
    b[lowest_positive] = np.median(a)  # one positive moves up past many negatives
    result = delong(y, [a, b])
    pos, neg = (y == 1), (y == 0)
    auc, _ = brute_force_delong(y, np.vstack([a, b]))

    # Reference from the differences of brute-force components, free of cancellation.
    def psi(s):
        return (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])

    d10 = psi(a).mean(1) - psi(b).mean(1)
    d01 = psi(a).mean(0) - psi(b).mean(0)
    var = d10.var(ddof=1) / pos.sum() + d01.var(ddof=1) / neg.sum()
    assert var > 0
    assert result.diff_se[0, 1] ** 2 == pytest.approx(var, rel=1e-9)
    assert result.z[0, 1] == pytest.approx((auc[0] - auc[1]) / math.sqrt(var), rel=1e-9)


def test_placements_equal_brute_force_counts():
    y, scores = tied_data(np.random.default_rng(3), 60, 3)
    pos = y == 1
    got = placements(pos, scores.astype(float))
    for k in range(3):
        for i in range(60):
            other = scores[k, ~pos[i] == pos]  # the other class
            if pos[i]:
                want = np.sum(other < scores[k, i]) + 0.5 * np.sum(other == scores[k, i])
            else:
                want = np.sum(other > scores[k, i]) + 0.5 * np.sum(other == scores[k, i])
            assert got[k, i] == want


def test_auc_equals_scikit_learn():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 2000)
    scores = np.vstack([rng.normal(size=2000) + y, np.round(rng.normal(size=2000) + 0.3 * y, 1)])
    result = delong(y, scores)
    for k in range(2):
        assert result.auc[k] == pytest.approx(roc_auc_score(y, scores[k]), abs=1e-15)


def rank_auc(y, scores):
    """AUC by the Mann-Whitney rank-sum formula, rows of ``scores`` independently."""
    m = y.sum(axis=-1)
    n = y.shape[-1] - m
    ranks = sps.rankdata(scores, axis=-1)
    return ((ranks * y).sum(axis=-1) - m * (m + 1) / 2) / (m * n)


def test_variance_agrees_with_stratified_bootstrap():
    rng = np.random.default_rng(11)
    n_cases, n_boot = 600, 4000
    y = np.repeat([1, 0], [240, 360])
    base = y + rng.normal(size=n_cases)
    scores = np.vstack([base + rng.normal(scale=0.7, size=n_cases), base])
    result = delong(y, scores)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    # Stratified: resample positives and negatives separately, as DeLong conditions on m and n.
    idx = np.hstack([rng.choice(pos, (n_boot, pos.size)), rng.choice(neg, (n_boot, neg.size))])
    boot_y = y[idx]
    aucs = np.stack([rank_auc(boot_y, scores[k][idx]) for k in range(2)])
    boot_var = np.var(aucs, axis=1, ddof=1)
    boot_diff_var = np.var(aucs[0] - aucs[1], ddof=1)
    tolerance = 4 * math.sqrt(2 / n_boot) + 0.02  # Monte-Carlo error of a variance + O(1/N)
    np.testing.assert_allclose(boot_var / np.diag(result.cov), 1.0, atol=tolerance)
    delong_diff_var = result.diff_se[0, 1] ** 2
    assert boot_diff_var / delong_diff_var == pytest.approx(1.0, abs=tolerance)


def test_identical_models_give_z_zero_p_one_exactly():
    y, scores = tied_data(np.random.default_rng(5), 300, 1)
    result = delong(y, np.vstack([scores, scores, scores + 0.0]))
    assert np.all(result.z == 0.0) and np.all(result.p == 1.0)
    assert np.all(result.p_adjusted == 1.0)
    assert np.all(result.diff_ci == 0.0)
    assert result.omnibus.df == 0 and result.omnibus.pvalue == 1.0


def test_zero_variance_with_different_aucs_gives_infinite_z():
    y = np.array([0, 0, 0, 1, 1, 1])
    perfect = y.astype(float)
    constant = np.zeros(6)
    result = delong(y, {"perfect": perfect, "constant": constant})
    assert result.auc.tolist() == [1.0, 0.5]
    assert result.z[0, 1] == math.inf and result.z[1, 0] == -math.inf
    assert result.p[0, 1] == 0.0 and result.p_adjusted[0, 1] == 0.0
    assert json.dumps(result.to_dict(), allow_nan=False)  # strict JSON even with infinite z


def test_log10_p_is_finite_below_float_range():
    rng = np.random.default_rng(2)
    n = 200_000
    y = rng.integers(0, 2, n)
    good = y + rng.normal(scale=0.5, size=n)
    bad = y + rng.normal(scale=3.0, size=n)
    result = delong(y, [good, bad])
    assert result.p[0, 1] == 0.0  # underflows double precision
    assert -1e6 < result.log10_p[0, 1] < -320
    # The tail formula agrees with scipy where both are representable.
    z = result.z[0, 1]
    assert result.log10_p[0, 1] == pytest.approx(
        (math.log(2) + sps.norm.logsf(abs(z))) / math.log(10), rel=1e-10
    )
    assert "1e-" in str(result)


def test_two_models_omnibus_equals_z_squared():
    y, scores = tied_data(np.random.default_rng(8), 400, 2)
    result = delong(y, scores)
    assert result.omnibus.df == 1
    assert result.omnibus.statistic == pytest.approx(result.z[0, 1] ** 2, rel=1e-9)
    assert result.omnibus.pvalue == pytest.approx(result.p[0, 1], rel=1e-8)


def test_omnibus_matches_closed_form_chi_square():
    y, scores = tied_data(np.random.default_rng(9), 500, 4)
    result = delong(y, scores)
    # Another contrast basis (successive differences) must give the same statistic.
    contrast = np.eye(4)[:-1] - np.eye(4)[1:]
    theta = contrast @ result.auc
    stat = theta @ np.linalg.solve(contrast @ result.cov @ contrast.T, theta)
    assert result.omnibus.df == 3
    assert result.omnibus.statistic == pytest.approx(stat, rel=1e-8)
    assert result.omnibus.pvalue == pytest.approx(sps.chi2.sf(stat, 3), rel=1e-8)


def test_intervals_and_symmetry():
    y, scores = tied_data(np.random.default_rng(4), 300, 3)
    result = delong(y, scores, alpha=0.1)
    zc = sps.norm.ppf(0.95)
    np.testing.assert_allclose(result.ci[:, 1], np.minimum(result.auc + zc * result.se, 1.0))
    np.testing.assert_allclose(result.z, -result.z.T)
    np.testing.assert_allclose(result.p, result.p.T)
    np.testing.assert_allclose(result.diff_ci[0, 1], -result.diff_ci[1, 0][::-1])
    assert np.all(np.diag(result.p) == 1.0)


def test_ci_is_clipped_to_unit_interval():
    y = np.array([0] * 5 + [1] * 5)
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.5, 0.7, 0.8, 0.9, 1.0])
    result = delong(y, scores)
    assert result.ci[0, 1] == 1.0 and result.ci[0, 0] < result.auc[0]


@pytest.mark.parametrize(
    "method,sm", [("holm", "holm"), ("bonferroni", "bonferroni"), ("bh", "fdr_bh")]
)
def test_adjustment_matches_statsmodels(method, sm):
    p = np.random.default_rng(0).uniform(0, 0.2, 36) ** 2
    p[3] = p[7]  # a tie
    np.testing.assert_allclose(adjust_pvalues(p, method), multipletests(p, method=sm)[1])


def test_p_adjusted_covers_the_k_choose_2_pairs():
    y, scores = tied_data(np.random.default_rng(6), 400, 4)
    result = delong(y, scores, correction="holm")
    upper = np.triu_indices(4, 1)
    np.testing.assert_allclose(
        result.p_adjusted[upper], multipletests(result.p[upper], method="holm")[1]
    )
    assert delong(y, scores, correction="none").p_adjusted[0, 1] == result.p[0, 1]


def test_mapping_input_and_names():
    y, scores = tied_data(np.random.default_rng(1), 100, 2)
    result = delong(y, {"r64": scores[0], "r320": scores[1]})
    assert result.names == ("r64", "r320")
    assert delong(y, scores, names=["a", "b"]).names == ("a", "b")
    text = str(result)
    assert "r64 - r320" in text and "omnibus" in text and "p_holm" in text
    assert json.loads(json.dumps(result.to_dict()))["pairs"][0]["a"] == "r64"


def test_large_n_has_no_integer_overflow():
    # m * n = 2.5e13 overflows int32 many times over; the AUC is known in closed form.
    n_cases = 10_000_000
    rng = np.random.default_rng(0)
    y = np.zeros(n_cases, dtype=np.int8)
    y[::2] = 1
    scores = rng.integers(0, 3, n_cases).astype(np.float64) + y  # positives shifted by one level
    result = delong(y, scores)
    pos = np.bincount(scores[y == 1].astype(int), minlength=4)
    neg = np.bincount(scores[y == 0].astype(int), minlength=4)
    below = np.concatenate([[0], np.cumsum(neg)[:-1]])
    wins = sum(int(pos[v]) * (int(below[v]) * 2 + int(neg[v])) for v in range(4))
    exact = wins / (2 * int(pos.sum()) * int(neg.sum()))
    assert result.auc[0] == pytest.approx(exact, abs=1e-15)
    assert 0 < result.se[0] < 1e-3


def test_unpaired_equals_sum_of_independent_variances():
    rng = np.random.default_rng(12)
    y_a, s_a = tied_data(rng, 300, 1)
    y_b, s_b = tied_data(rng, 200, 1)
    result = delong_unpaired(y_a, s_a[0], y_b, s_b[0], names=("internal", "external"))
    auc_a, cov_a = brute_force_delong(y_a, s_a)
    auc_b, cov_b = brute_force_delong(y_b, s_b)
    z = (auc_a[0] - auc_b[0]) / math.sqrt(cov_a[0, 0] + cov_b[0, 0])
    assert result.z == pytest.approx(z, rel=1e-9)
    assert result.p == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-9)
    assert result.diff == pytest.approx(auc_a[0] - auc_b[0], abs=1e-14)
    assert "internal" in str(result)
    json.dumps(result.to_dict(), allow_nan=False)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "y,scores,message",
    [
        ([0, 1, 2, 1, 0], [0.1, 0.2, 0.3, 0.4, 0.5], r"only 0 and 1.*\[2\.0\].*case 2"),
        (["a", "b", "a", "b"], [0.1, 0.2, 0.3, 0.4], "numeric or bool"),
        ([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], "only one class present.*all positives"),
        ([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], "only one class present.*all negatives"),
        ([1, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], "at least 2 positives and 2 negatives.*1 positive"),
        ([1, 0, 1, 0], [0.1, 0.2, 0.3], "length mismatch.*4 cases.*have 3"),
        ([1, 0, 1, 0], [0.1, np.nan, 0.3, 0.4], r"NaN/inf.*first at case 1.*nan_policy='omit'"),
        ([1, 0, 1, 0], [0.1, np.inf, 0.3, 0.4], "NaN/inf"),
        ([1, 0, np.nan, 0], [0.1, 0.2, 0.3, 0.4], "missing.*label"),
        ([[1, 0], [1, 0]], [0.1, 0.2], "1-D"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(y, scores, message):
    with pytest.raises(ValueError, match=message):
        delong(np.asarray(y), np.asarray(scores))


def test_bad_options_and_names():
    y, s = [0, 1, 0, 1], np.array([[0.1, 0.2, 0.3, 0.4]])
    with pytest.raises(ValueError, match="correction must be one of"):
        delong(y, s, correction="sidak")
    with pytest.raises(ValueError, match="alpha"):
        delong(y, s, alpha=1.5)
    with pytest.raises(ValueError, match="nan_policy"):
        delong(y, s, nan_policy="drop")
    with pytest.raises(ValueError, match="backend"):
        delong(y, s, backend="torch")
    with pytest.raises(ValueError, match="2 name"):
        delong(y, s, names=["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        delong(y, np.vstack([s, s]), names=["a", "a"])
    with pytest.raises(ValueError, match="do not pass both"):
        delong(y, {"a": s[0]}, names=["b"])
    with pytest.raises(ValueError, match=r"length mismatch between score vectors.*'b': 3"):
        delong(y, {"a": s[0], "b": s[0, :3]})


def test_nan_policy_omit_drops_cases_jointly_and_reports_them():
    y, scores = tied_data(np.random.default_rng(13), 200, 3)
    scores = scores.astype(float)
    scores[0, 5] = np.nan
    scores[2, 9] = np.inf
    scores[1, 5] = np.nan  # same case twice counts once
    result = delong(y, scores, nan_policy="omit")
    keep = np.ones(200, bool)
    keep[[5, 9]] = False
    reference = delong(y[keep], scores[:, keep])
    assert result.n_dropped == 2
    np.testing.assert_array_equal(result.auc, reference.auc)
    assert "2 dropped" in str(result)


# --------------------------------------------------------------------------- packaging, CLI


def test_import_pulls_in_no_heavy_framework():
    code = (
        "import sys, jcxr.stats, numpy as np\n"
        "jcxr.stats.delong([0, 1, 0, 1], [0.1, 0.4, 0.35, 0.8])\n"
        "heavy = {'jax', 'flax', 'optax', 'grain', 'tensorflow_datasets', 'wandb', 'tensorflow',"
        " 'torch', 'orbax'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def write_predictions(path, rng):
    y, scores = tied_data(rng, 250, 3)
    lines = ["image_id,finding,r64,r320,r600"]
    for i in range(y.size):
        lines.append(f"img{i:04d},{y[i]},{scores[0, i]},{scores[1, i]},{scores[2, i]}")
    path.write_text("\n".join(lines) + "\n")
    return y, scores


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "jcxr.stats", *map(str, args)], capture_output=True, text=True
    )


def test_cli_prints_tables_and_json(tmp_path):
    csv_path = tmp_path / "predictions.csv"
    y, scores = write_predictions(csv_path, np.random.default_rng(21))
    expected = delong(y, {"r64": scores[0], "r320": scores[1], "r600": scores[2]})

    table = run_cli(csv_path, "--label", "finding")
    assert table.returncode == 0, table.stderr
    for name in ("r64", "r320", "r600", "r64 - r320", "omnibus", "p_holm"):
        assert name in table.stdout
    assert "image_id" not in table.stdout  # non-numeric columns are not scores
    assert f"{expected.auc[1]:.4f}" in table.stdout

    as_json = run_cli(
        csv_path,
        "--label",
        "finding",
        "--scores",
        "r64,r600",
        "--json",
        "--correction",
        "bonferroni",
    )
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert payload["names"] == ["r64", "r600"] and payload["correction"] == "bonferroni"
    assert payload["auc"][1] == pytest.approx(expected.auc[2], abs=1e-15)
    assert payload["pairs"][0]["p_adjusted"] == pytest.approx(expected.p[0, 2], rel=1e-12)


def test_cli_errors_name_the_problem(tmp_path):
    csv_path = tmp_path / "predictions.csv"
    write_predictions(csv_path, np.random.default_rng(22))
    missing = run_cli(csv_path, "--label", "Nodule")
    assert missing.returncode == 2 and "no label column 'Nodule'" in missing.stderr
    assert "finding" in missing.stderr  # lists the columns that exist
    bad_score = run_cli(csv_path, "--label", "finding", "--scores", "r64,r999")
    assert bad_score.returncode == 2 and "['r999'] not found" in bad_score.stderr
    text = csv_path.read_text().splitlines()
    text[3] = text[3].replace(text[3].split(",")[2], "oops", 1)
    csv_path.write_text("\n".join(text))
    bad_value = run_cli(csv_path, "--label", "finding", "--scores", "r64")
    assert bad_value.returncode == 2 and "line 4, column 'r64'" in bad_value.stderr
    nowhere = run_cli(tmp_path / "absent.csv", "--label", "finding")
    assert nowhere.returncode == 2 and "no such file" in nowhere.stderr
    assert run_cli("--help").returncode == 0


def test_cli_catches_what_used_to_slip_through(tmp_path):
    """A typo in a defaulted score column, a repeated --scores, ragged and short rows, a BOM,
    a non-UTF-8 byte and a header-only file: each a one-line message naming file and line."""
    csv_path = tmp_path / "predictions.csv"
    write_predictions(csv_path, np.random.default_rng(23))
    lines = csv_path.read_text().splitlines()

    def run_with(text_lines, *args, encoding="utf-8"):
        csv_path.write_bytes("\n".join(text_lines).encode(encoding) + b"\n")
        return run_cli(csv_path, "--label", "finding", *args)

    typo = list(lines)
    typo[6] = ",".join([*typo[6].split(",")[:3], "O.5", typo[6].split(",")[4]])
    out = run_with(typo)  # --scores defaulted: r320 is not dropped, its odd cell is named
    assert out.returncode == 2 and "line 7, column 'r320': expected a number, found 'O.5'" in (
        out.stderr
    )
    out = run_with(lines, "--scores", "r64,r64")
    assert out.returncode == 2 and "['r64'] more than once" in out.stderr
    short = [*lines[:5], ",".join(lines[5].split(",")[:4]), *lines[6:]]
    out = run_with(short)
    assert out.returncode == 2 and "line 6: 4 fields, expected 5" in out.stderr
    out = run_with(["\ufeff" + lines[0], *lines[1:]])  # a BOM before the header
    assert out.returncode == 0, out.stderr
    latin = [*lines[:8], lines[8].replace("img", "imgé"), *lines[9:]]
    out = run_with(latin, encoding="latin-1")
    assert out.returncode == 2 and f"{csv_path}: line 9: byte 0xe9 is not UTF-8" in out.stderr
    out = run_with(lines[:1])
    assert out.returncode == 2 and "no data rows" in out.stderr
    assert "Traceback" not in out.stderr
