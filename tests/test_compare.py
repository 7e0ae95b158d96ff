"""The sweep's choice of analysis unit, and the power sentence its comparisons carry."""

import numpy as np
import pytest

from jcxr.data.label_data import LabelData
from jcxr.data.table import DataError
from jcxr.results import Comparison
from jcxr.stats import delong, power
from jcxr.summary import power_sentence
from jcxr.train.compare import cluster_ids, power_to_detect

PATIENTS = np.array(["p1", "p1", "p2", "p3", "p3", "p4", "p5", "p6"])
LABELS = np.array([1, 1, 1, 0, 0, 1, 0, 0])


def data(patients=PATIENTS, studies=None):
    n = len(patients)
    return LabelData("Mass", np.zeros(n, np.float32), {}, 1.0, patient_ids=patients,
                     study_ids=studies)  # fmt: skip


def test_auto_clusters_by_patient_only_when_a_patient_repeats():
    records = np.arange(8)
    ids, kind, note = cluster_ids("auto", data(), records, LABELS)
    assert kind == "patient" and list(ids) == list(PATIENTS) and note == ""
    singles = np.array([0, 2, 3, 5, 6, 7])  # one image per patient
    assert cluster_ids("auto", data(), singles, LABELS[singles]) == (None, None, "")
    forced, kind, _ = cluster_ids("patient", data(), singles, LABELS[singles])
    assert kind == "patient" and len(forced) == 6


def test_none_is_the_unclustered_protocol_and_study_needs_studies():
    assert cluster_ids("none", data(), np.arange(8), LABELS) == (None, None, "")
    with pytest.raises(DataError, match=r"no study IDs.*only CheXpert"):
        cluster_ids("study", data(), np.arange(8), LABELS)
    studies = np.array([f"s{i // 2}" for i in range(8)])
    ids, kind, _ = cluster_ids("study", data(studies=studies), np.arange(8), LABELS)
    assert kind == "study" and ids[0] == ids[1] == "s0"


def test_too_few_positive_patients_fall_back_to_cases_and_say_so():
    labels = np.array([1, 1, 0, 0, 0, 0, 0, 0])  # both positives are patient p1's
    ids, kind, note = cluster_ids("auto", data(), np.arange(8), labels)
    assert ids is None and kind is None
    assert "only 1 patient(s) with a positive" in note and "too few to cluster" in note


def test_power_to_detect_solves_for_best_against_reference():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    scores = np.stack([y * s + rng.normal(size=400) for s in (0.6, 1.0, 0.9)])
    result = delong(y, scores, names=["64px", "128px", "256px"])
    found = power_to_detect(result, [64, 128, 256], reference=256)
    assert found["best"] == 128 and found["reference"] == 256
    expected = power(result, pair=(2, 1), power=0.8)
    assert found["n_positive"] == pytest.approx(expected.n_positive, rel=1e-12)
    assert found["n_clusters"] is None
    comp = Comparison.from_delong(result, label="Mass", arch="resnet34", seed=0, split="test",
                                  resolutions=[64, 128, 256], power_80=found)  # fmt: skip
    sentence = power_sentence(comp)
    assert "To detect 128px's dAUC" in sentence and "over 256px at 80% power" in sentence
    assert f"{expected.n_positive:,.0f} positive" in sentence
    at_reference = power_to_detect(result, [64, 128, 256], reference=128)
    assert at_reference["n_positive"] is None
    assert "no lead to power" in power_sentence(
        Comparison.from_delong(
            result,
            label="Mass",
            arch="r",
            seed=0,
            split="test",
            resolutions=[64, 128, 256],
            power_80=at_reference,
        )
    )


def test_sufficient_resolution_from_the_reference_downward_and_its_sentence():
    from types import SimpleNamespace

    from jcxr.summary import sufficiency_sentence
    from jcxr.train.compare import sufficient_resolution

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 3000)
    shared = rng.normal(size=3000)
    scores = [y * mu + shared + rng.normal(scale=0.7, size=3000) for mu in (0.6, 1.04, 1.05)]
    result = delong(y, scores, names=["64px", "128px", "256px"])
    rules = SimpleNamespace(noninferiority_margin=0.02, noninferiority_reference=256,
                            noninferiority_procedure="fixed_sequence")  # fmt: skip
    found = sufficient_resolution(result, [64, 128, 256], rules)
    assert found["reference"] == 256 and [t["resolution"] for t in found["tests"]] == [128, 64]
    assert found["smallest"] == 128 and found["margin"] == 0.02

    def sentence(answer):
        return sufficiency_sentence(Comparison.from_delong(
            result, label="Mass", arch="r", seed=0, split="test", resolutions=[64, 128, 256],
            sufficient=answer))  # fmt: skip

    assert sentence(found).startswith("Mass: 128 px is sufficient: non-inferior to 256 px")

    def answer_of(sufficient):
        return Comparison.from_delong(result, label="Mass", arch="r", seed=0, split="test",
                                      resolutions=[64, 128, 256], sufficient=sufficient
                                      ).sufficient_resolution  # fmt: skip

    assert answer_of(found) == 128
    assert "within 0.02 AUC" in sentence(found)
    strict = sufficient_resolution(result, [64, 128, 256], SimpleNamespace(
        **{**vars(rules), "noninferiority_margin": 0.0}))  # fmt: skip
    assert strict["smallest"] is None  # 128 px is 0.005 below: not shown >= 256 px's AUC
    assert "256 px (the fixed reference) is the smallest sufficient" in sentence(strict)
    assert answer_of(strict) == 256 and answer_of(None) is None  # the W&B and figure answer
    best = sufficient_resolution(result, [64, 128, 256], SimpleNamespace(
        **{**vars(rules), "noninferiority_reference": 0}))  # fmt: skip
    assert best["reference"] == [64, 128, 256][int(np.argmax(result.auc))]
    assert best["reference_rule"] == "best AUC"
    lowest = sufficient_resolution(result, [64, 128, 256], SimpleNamespace(
        **{**vars(rules), "noninferiority_reference": 64}))  # fmt: skip
    assert lowest["tests"] == [] and "the lowest resolution trained" in sentence(lowest)
