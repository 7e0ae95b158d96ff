"""jcxr.stats.noninferiority: one-sided p and bounds against the two-sided ones, the two
procedures, the seed-aware variant, and the type-I error at the margin in a simulation."""

import numpy as np
import pytest
from scipy import stats as sps

from jcxr.stats import compare_seeds, delong, noninferiority


def three_models(rng, n=600):
    y = rng.integers(0, 2, n)
    shared = rng.normal(size=n)
    scores = {name: y * mu + shared + rng.normal(scale=0.7, size=n)
              for name, mu in (("64px", 0.7), ("128px", 1.0), ("256px", 1.05))}  # fmt: skip
    return y, scores


def test_zero_margin_is_half_the_two_sided_test_and_the_bound_its_1_minus_2alpha_limit():
    rng = np.random.default_rng(0)
    y, scores = three_models(rng)
    two = delong(y, scores, correction="none")
    one = noninferiority(two, reference="256px", candidates=["128px", "64px"], margin=0.0,
                         procedure="holm")  # fmt: skip
    for k, name in enumerate(one.candidates):
        i, j = two.names.index(name), two.names.index("256px")
        half = two.pvalue[i, j] / 2
        assert one.pvalue[k] == pytest.approx(half if two.diff[i, j] > 0 else 1 - half, rel=1e-9)
        low, _ = two.confidence_interval(1 - 2 * 0.05)
        assert one.lower_bound[k] == pytest.approx(low[i, j], rel=1e-12)


def test_margin_shifts_the_statistic_and_the_procedures_differ_as_documented():
    rng = np.random.default_rng(1)
    y, scores = three_models(rng, n=3000)
    result = delong(y, scores)
    seq = noninferiority(result, reference="256px", candidates=["128px", "64px"], margin=0.02)
    assert seq.statistic[0] == pytest.approx((seq.diff[0] + 0.02) / seq.sd[0], rel=1e-12)
    assert seq.non_inferior.tolist() == [True, False]  # 64 px loses ~0.08 AUC
    assert seq.smallest_sufficient == "128px"
    assert np.all(np.diff(seq.p_adjusted) >= 0)  # fixed sequence: running maximum
    # a later candidate cannot pass once an earlier one failed, even with a small p
    reordered = noninferiority(result, reference="256px", candidates=["64px", "128px"],
                               margin=0.02)  # fmt: skip
    assert reordered.non_inferior.tolist() == [False, False]
    assert reordered.smallest_sufficient is None and "none below 256px" in str(reordered)
    holm = noninferiority(result, reference="256px", candidates=["64px", "128px"], margin=0.02,
                          procedure="holm")  # fmt: skip
    assert holm.non_inferior.tolist() == [False, True]


def test_seed_aware_uses_t_with_its_degrees_of_freedom():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    cube = np.stack([[y * (mu + rng.normal(scale=0.2)) + rng.normal(size=400)
                      for _ in range(4)] for mu in (1.0, 1.1)])  # fmt: skip
    seeds = compare_seeds(y, cube, names=["128px", "256px"])
    result = noninferiority(seeds, reference="256px", margin=0.05)
    df = seeds.df[0, 1]
    assert np.isfinite(df)
    expected = sps.t.sf((seeds.diff[0, 1] + 0.05) / seeds.diff_se[0, 1], df)
    assert result.pvalue[0] == pytest.approx(expected, rel=1e-9)
    assert result.lower_bound[0] == pytest.approx(
        seeds.diff[0, 1] - sps.t.ppf(0.95, df) * seeds.diff_se[0, 1], rel=1e-12
    )


def test_type_one_error_at_the_margin_is_nominal():
    """Two correlated binormal models whose population AUCs differ by exactly the margin."""
    rng = np.random.default_rng(2026)
    margin, alpha, replicates, n = 0.03, 0.05, 4000, 800
    mu_ref = 1.2  # AUC = Phi(mu / sqrt(2 * total variance)); total variance 1
    auc_ref = sps.norm.cdf(mu_ref / np.sqrt(2))
    mu_cand = np.sqrt(2) * sps.norm.ppf(auc_ref - margin)
    rejected = 0
    for _ in range(replicates):
        y = rng.integers(0, 2, n)
        shared = rng.normal(scale=np.sqrt(0.6), size=n)
        ref = mu_ref * y + shared + rng.normal(scale=np.sqrt(0.4), size=n)
        cand = mu_cand * y + shared + rng.normal(scale=np.sqrt(0.4), size=n)
        result = noninferiority(delong(y, {"ref": ref, "cand": cand}), reference="ref",
                                margin=margin, alpha=alpha)  # fmt: skip
        rejected += bool(result.non_inferior[0])
    rate = rejected / replicates
    print(f"type-I error at the margin: {rate:.4f} over {replicates} replicates")
    assert 0.04 <= rate <= 0.06


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"reference": "512px"}, r"reference: no model '512px'"),
        ({"reference": "256px", "margin": -0.01}, "margin must be a number >= 0"),
        ({"reference": "256px", "candidates": ["256px"]}, "include the reference"),
        ({"reference": "256px", "procedure": "bonferroni"}, "procedure must be one of"),
        ({"reference": "256px", "alpha": 0}, r"alpha must be a number in \(0, 1\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    rng = np.random.default_rng(3)
    y, scores = three_models(rng, n=100)
    with pytest.raises(ValueError, match=message):
        noninferiority(delong(y, scores), **kwargs)


def test_cli_noninferiority(tmp_path):
    import json
    import subprocess
    import sys

    rng = np.random.default_rng(4)
    y, scores = three_models(rng, n=3000)
    path = tmp_path / "predictions.csv"
    columns = [scores[name] for name in ("64px", "128px", "256px")]
    rows = ["finding,r64,r128,r256"]
    rows += [",".join([str(y[i]), *(repr(float(c[i])) for c in columns)]) for i in range(y.size)]
    path.write_text("\n".join(rows) + "\n")
    command = [sys.executable, "-m", "jcxr.stats", str(path), "--label", "finding"]
    out = subprocess.run([*command, "--noninferiority", "0.02", "--json"], capture_output=True,
                         text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)["noninferiority"]
    assert found["reference"] == "r256" and found["candidates"] == ["r128", "r64"]
    assert found["smallest_sufficient"] == "r128" and found["margin"] == 0.02
    text = subprocess.run([*command, "--noninferiority", "0.02", "--reference", "r128"],
                          capture_output=True, text=True).stdout  # fmt: skip
    assert "Non-inferiority to r128 within 0.02 AUC" in text
