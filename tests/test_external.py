"""External validation (config.eval.external, Cardona Cardenas et al. 2020): every cell is also
scored on another dataset's shards and its internal test AUC compared with the external one."""

import json

import numpy as np
import pytest
from scipy import special, stats
from sklearn.metrics import roc_auc_score

from jcxr.data import nih, phantom, shards
from jcxr.data.table import DataError
from jcxr.train.sweep import run_sweep

from .helpers import tiny_config


@pytest.fixture(scope="module")
def other_hospital(tmp_path_factory):
    """120 other phantoms (another seed), prepared at 32 px."""
    root = tmp_path_factory.mktemp("other_root")
    phantom.generate(root, 120, seed=9, workers=1)
    out = tmp_path_factory.mktemp("other_shards")
    shards.prepare(nih.read_metadata(root), root, out, [32], workers=1, progress=False)
    return out


def test_each_cell_is_scored_on_the_external_set_and_compared_with_its_test_set(
    phantom_shards, other_hospital, tmp_path
):
    config = tiny_config(phantom_shards, eval__external=str(other_hospital))
    result = run_sweep(config, tmp_path)
    (cell,) = result.cells
    test, external = cell.splits["test"], cell.splits["external"]
    assert {"auc", "sensitivity", "specificity", "accuracy", "precision", "f1"} <= set(external)
    saved = np.load(tmp_path / "cells" / cell.cell.id / "predictions_external.npz")
    mass = shards.read_index(other_hospital, 32).label("Mass")
    np.testing.assert_array_equal(saved["record"], np.flatnonzero(~np.isnan(mass)))
    np.testing.assert_array_equal(saved["label"], mass[saved["record"]])
    assert external["auc"] == pytest.approx(roc_auc_score(saved["label"], saved["score"]))
    # unpaired DeLong by its closed form from the two sets' AUCs and DeLong SEs
    diff = external["auc"] - test["auc"]
    z = diff / np.hypot(external["auc_se"], test["auc_se"])
    assert external["auc_minus_test"] == pytest.approx(diff, abs=1e-12)
    assert external["p_vs_test"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    low, high = external["auc_minus_test_low"], external["auc_minus_test_high"]
    assert low < diff < high
    written = json.loads((tmp_path / "results.json").read_text())["cells"][0]["splits"]
    assert written["external"]["p_vs_test"] == external["p_vs_test"]
    html = (tmp_path / "report.html").read_text()
    assert '<section id="external">' in html and "unpaired DeLong" in html
    assert f"{external['p_vs_test']:.2g}" in html


def test_an_external_set_without_the_sweeps_resolution_or_label_stops_before_training(
    phantom_shards, other_hospital, tmp_path
):
    config = tiny_config(phantom_shards, eval__external=str(other_hospital))
    config.sweep.resolutions = (48,)
    with pytest.raises(DataError, match=r"has no shards at \[48\] px \(prepared: \[32\]\)"):
        run_sweep(config, tmp_path / "a")
    config = tiny_config(phantom_shards, eval__external=str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="not a shard folder"):
        run_sweep(config, tmp_path / "b")
    assert not (tmp_path / "a" / "cells").exists()


def test_the_architectures_are_compared_on_the_same_images_and_both_sets(
    phantom_shards, other_hospital, tmp_path
):
    """Both DeLong kinds of Cardona Cardenas et al. 2020: models against each other on the same
    test images (paired), each model's internal test set against the external one (unpaired)."""
    from jcxr.stats import delong

    config = tiny_config(phantom_shards, train__epochs=1, eval__external=str(other_hospital))
    config.sweep.archs = ("resnet_tiny", "resnet18")
    result = run_sweep(config, tmp_path)
    assert [c.cell.arch for c in result.cells] == ["resnet_tiny", "resnet18"]
    assert all("p_vs_test" in c.splits["external"] for c in result.cells)
    (comp,) = result.between_archs
    assert (comp["label"], comp["resolution"], comp["seed"], comp["split"]) == ("Mass", 32, 0,
                                                                              "test")  # fmt: skip
    assert comp["auc"] == pytest.approx([c.splits["test"]["auc"] for c in result.cells])
    saved = [np.load(tmp_path / "cells" / c.cell.id / "predictions_test.npz") for c in result.cells]
    # clustered by patient where there are enough patients of each class, as the resolutions
    patients = shards.read_index(phantom_shards, 32).patient_ids[saved[0]["record"]]
    clusters = patients if comp["unit"] == "per patient" else None
    assert comp["unit"] in ("per patient", "per image")
    expected = delong(saved[0]["label"], np.stack([s["score"] for s in saved]), clusters=clusters)
    assert comp["p_adjusted"][0][1] == pytest.approx(expected.p_adjusted[0, 1], rel=1e-9)
    assert (tmp_path / "comparisons" / "Mass__r32__s0__archs.txt").is_file()
    html = (tmp_path / "report.html").read_text()
    assert '<section id="archs">' in html and '<section id="external">' in html
    reread = json.loads((tmp_path / "results.json").read_text())["between_archs"]
    assert reread[0]["p_adjusted"][0][1] == comp["p_adjusted"][0][1]


def test_the_second_hospital_is_read_by_the_openi_reader_with_its_findings(tmp_path):
    from jcxr.data import load_table, phantom_hospital
    from jcxr.data.phantom import _patients

    root = phantom_hospital.generate(tmp_path, 30, seed=4, workers=1)
    table = load_table("openi", root)
    drawn = _patients(30, 4)
    for name in ("Cardiomegaly", "Mass", "Nodule", "Effusion"):
        np.testing.assert_array_equal(table.label(name) == 1,
                                      [im["findings"][name] for im in drawn])  # fmt: skip
    normal = [not any(im["findings"].values()) for im in drawn]
    np.testing.assert_array_equal(table.label("No Finding") == 1, normal)
    cohort = load_table("openi", root, preset="cardenas2020").label("Cardiomegaly")
    assert int(np.sum(cohort == 1) + np.sum(cohort == 0)) == sum(
        im["findings"]["Cardiomegaly"] or n for im, n in zip(drawn, normal, strict=True)
    )
    # the other scanner: a black border (wider field of view), the chest inside it
    from PIL import Image

    grey = np.asarray(Image.open(root / table.paths[0]))
    assert grey.shape == (512, 512) and grey[:40].mean() < 0.3 * grey[150:350, 150:350].mean()
    stamp = (root / phantom_hospital.STAMP).stat().st_mtime_ns
    phantom_hospital.generate(tmp_path, 30, seed=4, workers=1)  # complete: reused
    assert (root / phantom_hospital.STAMP).stat().st_mtime_ns == stamp


@pytest.mark.parametrize("views", [1, 3])
def test_scores_far_out_in_the_tail_keep_their_ranking(views):
    """Logits of 40-45 (a shifted external set) are 1.0 as probabilities even in float64: the
    metrics and the saved scores rank by logits (with test-time views, by the logit of their
    mean probability), so the order survives."""
    from jcxr.train.evaluate import evaluate

    logits = np.array([40.0, 41.0, 42.0, 43.0, 40.5, 42.5], np.float32)
    labels = np.array([0, 1, 0, 1, 0, 1], np.float32)
    shifts = np.array([0.0, 0.3, -0.2], np.float32)[:views]  # each view's logits a bit apart

    class Steps:
        tta_views = views - 1

        def predict(self, pixels):
            return logits[:, None] + shifts

    assert np.all(special.expit(logits.astype(np.float64)) == 1.0)
    batch = {"pixels": np.zeros((6, 8, 8), np.uint8), "record": np.arange(6), "label": labels}
    metrics, predictions = evaluate(Steps(), [batch])
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels, logits))
    assert metrics["auc"] == pytest.approx(8 / 9) and np.unique(predictions["score"]).size == 6
    # the logit of the mean probability: in the tail, -log(mean exp(-z)) over the views
    z = (logits[:, None] + shifts).astype(np.float64)
    np.testing.assert_allclose(predictions["score"], -np.log(np.mean(np.exp(-z), axis=1)),
                               rtol=1e-12)  # fmt: skip


def test_cardenas2020_runs_end_to_end_on_phantoms_of_two_hospitals(tmp_path):
    """configs/cardenas2020.py reduced: PadChest's place taken by phantoms, OpenI's by the
    second hospital's (eval.external = "phantoms"), two architectures at 32 px."""
    from .test_train import load_config

    config = load_config("cardenas2020")
    config.data.source = "phantom"
    config.data.prepare_if_missing = True
    config.data.phantom_images = 400
    config.sweep.resolutions = (32,)
    config.sweep.archs = ("resnet_tiny", "resnet18")
    config.train.epochs = 2
    config.eval.external = "phantoms"
    config.eval.reference_resolution = 32
    config.logging.wandb = "disabled"
    config.logging.progress = False
    result = run_sweep(config, tmp_path)
    assert [c.status for c in result.cells] == ["done", "done"]
    for cell in result.cells:
        internal, external = cell.splits["test"], cell.splits["external"]
        assert 0 <= internal["auc"] <= 1 and 0 <= external["auc"] <= 1
        scored = np.load(tmp_path / "cells" / cell.cell.id / "predictions_external.npz")
        assert np.unique(scored["score"]).size > 1  # ranked, not all tied
        assert external["auc_minus_test"] == pytest.approx(external["auc"] - internal["auc"])
        assert 0 <= external["p_vs_test"] <= 1
    (between,) = result.between_archs
    assert between["archs"] == ["resnet_tiny", "resnet18"] and between["label"] == "Cardiomegaly"
    assert (tmp_path / "external_shards" / "manifest.json").is_file()
    html = (tmp_path / "report.html").read_text()
    assert '<section id="external">' in html and '<section id="archs">' in html
