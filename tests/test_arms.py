"""Arms (config.sweep.arms): the sweep again under named config changes, compared model by
model on the same images (Cardona Cardenas et al. 2020's class weights 75/25 against 50/50)."""

import json

import numpy as np
import pytest

from jcxr.stats import delong
from jcxr.train.arms import arm_configs, parse_arms, run_arms
from jcxr.train.config import validate

from .helpers import tiny_config
from .test_train import load_config


def test_each_arm_is_a_whole_sweep_and_the_arms_are_compared_on_the_same_images(
    phantom_shards, tmp_path
):
    config = tiny_config(phantom_shards, train__epochs=1, train__loss="class_weights",
                         train__class_weights=(0.25, 0.75))  # fmt: skip
    config.sweep.arms = ("w75: train.class_weights=(0.25, 0.75)",
                         "w50: train.class_weights=(0.5, 0.5)")  # fmt: skip
    results = run_arms(config, tmp_path)
    assert list(results) == ["w75", "w50"]
    for name, weights in (("w75", [0.25, 0.75]), ("w50", [0.5, 0.5])):
        written = json.loads((tmp_path / name / "config.json").read_text())
        assert written["train"]["class_weights"] == weights and written["name"] == f"tiny-{name}"
        assert (tmp_path / name / "report.html").is_file()
        assert [c.status for c in results[name].cells] == ["done"]
    (row,) = json.loads((tmp_path / "arms.json").read_text())["rows"]
    assert (row["label"], row["arch"], row["resolution"], row["split"]) == ("Mass", "resnet_tiny",
                                                                           32, "test")  # fmt: skip
    cell = results["w75"].cells[0].cell.id
    saved = [np.load(tmp_path / n / "cells" / cell / "predictions_test.npz") for n in row["arms"]]
    np.testing.assert_array_equal(saved[0]["record"], saved[1]["record"])
    assert not np.allclose(saved[0]["score"], saved[1]["score"])  # the weights changed training
    expected = delong(saved[0]["label"], np.stack([s["score"] for s in saved]))
    assert row["auc"] == pytest.approx(expected.auc.tolist())
    assert row["p"] == [pytest.approx(float(expected.p[0, 1]))]
    assert row["auc"][0] == pytest.approx(results["w75"].cells[0].splits["test"]["auc"])
    page = (tmp_path / "arms.html").read_text()
    assert 'href="w75/report.html"' in page and 'href="w50/report.html"' in page
    assert "w75 vs w50" in (tmp_path / "arms.txt").read_text()


def test_cardenas2020_runs_both_class_weightings():
    arms = dict(arm_configs(load_config("cardenas2020")))
    assert list(arms) == ["weights_75_25", "weights_50_50"]
    assert arms["weights_75_25"].train.class_weights == (0.25, 0.75)
    assert arms["weights_50_50"].train.class_weights == (0.5, 0.5)
    assert all(a.sweep.archs == ("xception", "inception_v3", "mobilenet_v2", "efficientnet_b2",
                                 "densenet121") for a in arms.values())  # fmt: skip


@pytest.mark.parametrize(
    "arms,message",
    [
        (("w50 train.class_weights=(0.5, 0.5)",), "expected 'NAME: FIELD=VALUE"),
        (("w50: train.class_weights=(0.5, 0.5",), "is not FIELD=VALUE"),
        (("w50: train.class_weight=(0.5, 0.5)",), "no config field 'train.class_weight'"),
        (("w50: sweep.archs=('resnet18',)",), "cannot change sweep.archs"),
        (("w50: train.epochs=-1",), "entry 'w50': config.train.epochs must be >= 1"),
        (("a: train.epochs=1", "a: train.epochs=2"), "names a more than once"),
        (("a:",), "changes nothing"),
    ],
)
def test_bad_arms_are_named_before_anything_trains(phantom_shards, arms, message):
    config = tiny_config(phantom_shards)
    config.sweep.arms = arms
    with pytest.raises(ValueError, match=message):
        validate(config)


def test_arm_values_are_python_literals():
    ((name, overrides),) = parse_arms(["x-1: train.loss='focal'; model.dropout=0.3"])
    assert name == "x-1" and overrides == {"train.loss": "focal", "model.dropout": 0.3}
