"""The phantoms' reference observers (jcxr.data.phantom_observer) and their place beside the
networks in a sweep."""

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jcxr.data import phantom, phantom_observer
from jcxr.data.shards import read_index, read_pixels, resize
from jcxr.train.sweep import run_sweep

from .helpers import tiny_config


@pytest.fixture(scope="module")
def rendered():
    """80 phantoms at native size with what the generator drew (the truth)."""
    rng = np.random.default_rng(7)
    drawn = [{f: bool(rng.random() < 0.45) for f in phantom.FINDINGS} for _ in range(80)]
    images = [phantom.render(f, *map(int, rng.integers(2**31, size=2))) for f in drawn]
    return images, drawn


def observer_auc(rendered, finding, resolution):
    images, drawn = rendered
    pixels = np.stack([resize(im, resolution, "bilinear") for im in images])
    return roc_auc_score([d[finding] for d in drawn], phantom_observer.scores(pixels, finding))


def test_the_nodule_observer_sees_what_the_phantoms_were_built_to_show(rendered):
    """At 32 px a nodule is a one-pixel spot like any vessel; from 64 px up it is not."""
    auc = {r: observer_auc(rendered, "Nodule", r) for r in (32, 64, 128)}
    assert auc[32] < 0.7 and auc[64] > 0.9 and auc[128] > 0.95, auc


@pytest.mark.parametrize("finding", ["Cardiomegaly", "Effusion"])
def test_large_findings_are_read_at_every_resolution(rendered, finding):
    auc = {r: observer_auc(rendered, finding, r) for r in (32, 128)}
    assert min(auc.values()) > 0.9, auc


def test_mass_has_no_observer():
    assert not phantom_observer.has_observer("Mass")
    with pytest.raises(ValueError, match=r"no reference observer for 'Mass'"):
        phantom_observer.scores(np.zeros((1, 32, 32), np.uint8), "Mass")


def test_a_phantom_sweep_scores_the_observer_on_the_compared_images(phantom_shards, tmp_path):
    config = tiny_config(phantom_shards, train__epochs=1)
    config.sweep.labels = ("Nodule", "Mass")
    config.sweep.resolutions = (32, 48)
    result = run_sweep(config, tmp_path)
    assert set(result.observers) == {"Nodule"}  # Mass has none
    observer = json.loads((tmp_path / "results.json").read_text())["observers"]["Nodule"]
    assert observer["split"] == "test" and observer["resolutions"] == [32, 48]
    table = read_index(phantom_shards, 32)
    for i, r in enumerate((32, 48)):
        # the networks' own test images, in their saved order
        saved = np.load(
            tmp_path / "cells" / f"Nodule__resnet_tiny__r{r}__s0" / "predictions_test.npz"
        )
        scores = phantom_observer.scores(read_pixels(phantom_shards, r, saved["record"]), "Nodule")
        assert np.array_equal(saved["label"], table.label("Nodule")[saved["record"]])
        assert observer["auc"][i] == pytest.approx(roc_auc_score(saved["label"], scores), abs=1e-12)
        low, high = observer["ci"][i]
        assert low < observer["auc"][i] < high
    html = (tmp_path / "report.html").read_text()
    assert "reference observer (matched filter at a nodule&#x27;s size" in html
    # real data: no observer, the slot stays empty
    config.data.source = "nih"
    from jcxr.train.observer import reference_observer

    assert reference_observer(config, phantom_shards, None, result.comparisons["Nodule"]) is None
