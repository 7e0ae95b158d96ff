"""jcxr.stats.power against pROC's power.roc.test (its tests' printed values, on pROC's own
aSAH data in tests/golden/proc/asah.csv) and Obuchowski et al. (2004) Table 4."""

import math
from pathlib import Path

import numpy as np
import pytest

from jcxr.stats import Binormal, delong, detectable_auc, power

ASAH = Path(__file__).parent / "golden" / "proc" / "asah.csv"


@pytest.fixture(scope="module")
def asah():
    data = np.genfromtxt(ASAH, delimiter=",", names=True)
    scores = {name: data[name] for name in ("ndka", "wfns", "s100b")}
    return delong(data["outcome"], scores)


def test_asah_matches_procs_documented_delong(asah):
    # pROC's roc.test(r.wfns, r.s100b) prints "Z = 2.209, p-value = 0.02718"
    assert asah.n_positive == 41 and asah.n_negative == 72
    assert asah.statistic[1, 2] == pytest.approx(2.209, abs=5e-4)
    assert asah.pvalue[1, 2] == pytest.approx(0.02718, abs=5e-6)


@pytest.mark.parametrize(
    "kwargs,field,expected",
    [
        ({}, "power", 0.7131594),
        ({"power": 0.9}, "n_positive", 64.77777),
        ({"power": 0.9}, "n_negative", 113.7561),
        ({"power": 0.9, "n_positive": 41, "alpha": None}, "alpha", 0.1836639),
    ],
)
def test_two_curves_from_a_comparison_match_proc(asah, kwargs, field, expected):
    result = power(asah, pair=("ndka", "wfns"), **kwargs)
    assert getattr(result, field) == pytest.approx(expected, rel=1e-6)


def test_kappa_from_the_data_or_given(asah):
    # pROC: power.roc.test(r.s100b, r.ndka, power = 0.9) with and without kappa = 1
    assert power(asah, pair=("s100b", "ndka"), power=0.9).n_positive == pytest.approx(
        213.117677, rel=1e-8
    )
    given = power(asah, pair=(2, 0), power=0.9, kappa=1.0)
    assert given.n_positive == pytest.approx(213.117677, rel=1e-8)
    assert given.n_negative == given.n_positive


@pytest.mark.parametrize(
    "kwargs,field,expected",
    [
        ({"auc": 0.73, "n_positive": 41, "kappa": 72 / 41}, "power", 0.9897453),
        ({"auc": 2159 / 2952, "power": 0.95, "kappa": 1.7}, "n_positive", 29.29764),
        ({"auc": 2159 / 2952, "power": 0.95, "kappa": 1.7}, "n_negative", 49.806),
        (
            {"auc": 0.73, "n_positive": 41, "kappa": 72 / 41, "power": 0.95, "alpha": None},
            "alpha",
            0.009238584,
        ),
    ],
)
def test_one_auc_matches_proc(kwargs, field, expected):
    assert getattr(power(**kwargs), field) == pytest.approx(expected, rel=1e-6)


def test_detectable_auc_matches_proc_to_its_root_tolerance():
    # pROC solves with uniroot's default tolerance (~1e-4) and prints 0.6961054; the exact
    # root is 0.69610; to 1e-3 as the issue asks, and exact by the forward formula
    found = detectable_auc(41, kappa=72 / 41, power=0.95)
    assert found == pytest.approx(0.6961054, abs=1e-3)
    assert power(auc=found, n_positive=41, kappa=72 / 41).power == pytest.approx(0.95, abs=1e-9)


@pytest.mark.parametrize(
    "kwargs,field,expected",
    [
        ({"power": 0.8}, "n_positive", 107.0238),
        ({"power": 0.8, "n_positive": 107, "alpha": None}, "alpha", 0.05004012),
        ({"n_positive": 107}, "power", 0.7999286),
    ],
)
def test_binormal_partial_auc_matches_proc(kwargs, field, expected):
    # Obuchowski & McClish 1997 example 2: partial AUC over FPR 0-0.2
    params = Binormal(2.6, 1.0, 1.9, 1.0, r_positive=0.6, r_negative=0.6, fpr=(0.0, 0.2))
    assert getattr(power(binormal=params, delta=0.037, **kwargs), field) == pytest.approx(
        expected, rel=1e-6
    )


def test_binormal_full_range_is_the_full_auc():
    full = Binormal(1.5, 0.9, 1.0, 1.1, r_positive=0.5, r_negative=0.4)
    ranged = Binormal(1.5, 0.9, 1.0, 1.1, r_positive=0.5, r_negative=0.4, fpr=(0.0, 1.0))
    assert full.aucs == pytest.approx(ranged.aucs, abs=1e-9)
    a = power(binormal=full, power=0.8)
    b = power(binormal=ranged, power=0.8)
    assert a.n_positive == pytest.approx(b.n_positive, rel=1e-7)


KAPPAS = (0.25, 0.5, 1, 2, 4)
THETAS = (0.6, 0.7, 0.8, 0.9, 0.95)
# Obuchowski et al. 2004 Table 4 (one-sided alpha 0.05, power 0.9), at least 10 per group; two
# entries as corrected in pROC's tests (340 for 339, 202 for 201: off by one in the paper)
TABLE_CONTROLS = [[84, 20, 10, 10, 10], [101, 25, 10, 10, 10], [135, 33, 14, 10, 10],
                  [203, 50, 21, 20, 20], [340, 84, 40, 40, 40]]  # fmt: skip
TABLE_CASES = [[334, 80, 40, 40, 40], [202, 49, 20, 20, 20], [135, 33, 14, 10, 10],
               [102, 25, 11, 10, 10], [85, 21, 10, 10, 10]]  # fmt: skip


@pytest.mark.parametrize("row,kappa", enumerate(KAPPAS))
def test_obuchowski_2004_table_4(row, kappa):
    for col, theta in enumerate(THETAS):
        r = power(auc=theta, power=0.9, kappa=kappa, alternative="one-sided")
        cases, controls = math.ceil(r.n_positive), math.ceil(r.n_negative)
        # the table's floor: at least 10 in each group, the other group scaled by kappa
        assert max(10, (10 if cases < 10 else 0) * kappa, controls) == TABLE_CONTROLS[row][col]
        assert max(10, (10 if controls < 10 else 0) / kappa, cases) == TABLE_CASES[row][col]


def test_power_grows_with_n_and_the_solvers_agree(asah):
    by_n = [power(asah, pair=(1, 2), n_positive=n).power for n in (20, 41, 80, 160)]
    assert by_n == sorted(by_n)
    n = power(asah, pair=(1, 2), power=0.8).n_positive
    assert power(asah, pair=(1, 2), n_positive=n).power == pytest.approx(0.8, abs=1e-12)


def test_clustered_comparison_needs_more_cases():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 6, 300)
    clusters = np.repeat(np.arange(300), sizes)
    y = np.repeat(rng.integers(0, 2, 300), sizes)
    shared = rng.normal(size=300)[clusters] + y
    scores = np.stack(
        [shared + rng.normal(size=y.size), shared + 0.3 * y + rng.normal(size=y.size)]
    )
    plain = power(delong(y, scores), power=0.8).n_positive
    clustered_result = delong(y, scores, clusters=clusters)
    assert power(clustered_result, power=0.8).n_positive > plain
    assert "clustered" in power(clustered_result, power=0.8).method


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({}, "exactly one of result=, binormal= or auc="),
        ({"auc": 0.8, "n_positive": 50, "power": 0.8}, "leave exactly one of n_positive"),
        ({"auc": 1.2, "power": 0.8}, r"auc must lie in \(0, 1\)"),
        ({"auc": 0.8, "power": 1.5}, r"power must be a number in \(0, 1\)"),
        ({"auc": 0.8, "power": 0.8, "kappa": 0}, "kappa"),
        ({"auc": 0.8, "power": 0.8, "alternative": "greater"}, "alternative must be one of"),
        ({"auc": 0.5, "power": 0.8}, "difference is 0"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        power(**kwargs)


def test_bad_pair_names_the_curves(asah):
    with pytest.raises(ValueError, match=r"'r512'.*\['ndka', 'wfns', 's100b'\]"):
        power(asah, pair=("r512", "wfns"))
    with pytest.raises(ValueError, match="twice"):
        power(asah, pair=(1, "wfns"))


def run_power_cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "jcxr.stats", "power", *map(str, args)],
                          capture_output=True, text=True)  # fmt: skip


def test_power_cli_solves_each_unknown():
    import json

    out = run_power_cli(ASAH, "--label", "outcome", "--scores", "ndka,wfns", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["power"] == pytest.approx(0.7131594, rel=1e-6)
    out = run_power_cli(ASAH, "--label", "outcome", "--scores", "ndka,wfns", "--power", "0.9")
    assert out.returncode == 0 and "needs 64.8 positives" in out.stdout
    out = run_power_cli("--auc", "0.73", "--n-positive", "41", "--kappa", str(72 / 41),
                        "--power", "0.95", "--json")  # fmt: skip
    assert json.loads(out.stdout)["alpha"] == pytest.approx(0.009238584, rel=1e-6)
    binormal = ["--binormal", "2.6,1,1.9,1", "--r-positive", "0.6", "--r-negative", "0.6"]
    out = run_power_cli(*binormal, "--fpr", "0,0.2", "--delta", "0.037", "--power", "0.8", "--json")
    assert json.loads(out.stdout)["n_positive"] == pytest.approx(107.0238, rel=1e-6)


def test_power_cli_errors_are_one_line():
    out = run_power_cli("--binormal", "2.6,1,1.9", "--r-positive", "0.6", "--r-negative", "0.6")
    assert out.returncode == 2 and "--binormal takes 4 comma-separated numbers" in out.stderr
    out = run_power_cli(ASAH, "--label", "outcome", "--scores", "ndka")
    assert out.returncode == 2 and "--scores A,B (two columns)" in out.stderr
    out = run_power_cli("--power", "0.8")
    assert out.returncode == 2 and "exactly one of result=, binormal= or auc=" in out.stderr
    assert run_power_cli("--help").returncode == 0


def test_a_null_variance_that_is_not_positive_falls_back_to_the_alternatives(asah):
    import dataclasses

    # var_1 below cov_12 (possible when curve 2 varies much more): V0 = 2 (var_1 - cov_12) < 0
    cov = np.array([[1.0, 1.5, 0.0], [1.5, 4.0, 0.0], [0.0, 0.0, 1.0]]) * 1e-3
    odd = dataclasses.replace(asah, cov=cov)
    found = power(odd, pair=(0, 1), power=0.8)
    va = (1.0 + 4.0 - 3.0) * 1e-3 * 41
    z = 1.959963984540054 + 0.8416212335729143
    assert found.n_positive == pytest.approx(z**2 * va / found.delta**2, rel=1e-9)
    assert "V0 = VA" in found.method
    flat = dataclasses.replace(asah, cov=np.full((3, 3), 1e-3))
    with pytest.raises(ValueError, match="has variance 0"):
        power(flat, pair=(0, 1), power=0.8)
