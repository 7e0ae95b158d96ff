"""jcxr.results: the typed results round-trip through JSON and every view reads the same numbers."""

import csv
import io
import json

import numpy as np
import pytest

from jcxr.results import (
    Cell,
    CellResult,
    Comparison,
    SweepResult,
    cells_csv,
)
from jcxr.stats import delong
from jcxr.summary import console_summary


@pytest.fixture(scope="module")
def comparison():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    scores = {f"{r}px": y * r / 200 + rng.normal(size=400) for r in (32, 64, 128)}
    scores["256px"] = scores["128px"]  # identical models: z = 0, p = 1 exactly
    result = delong(y, scores)
    comp = Comparison.from_delong(
        result, label="Mass", arch="resnet_tiny", seed=0, split="test",
        resolutions=[32, 64, 128, 256],
    )  # fmt: skip
    return result, comp


def done_cell(resolution, auc):
    return CellResult(
        Cell("Mass", resolution, "resnet_tiny", 0),
        status="done",
        best_epoch=2,
        positive_weight=2.5,
        train_images=100,
        steps=14,
        microbatch_size=8,
        devices=("cpu:0",),
        seconds=1.5,
        metrics={"auc": auc, "auc_se": 0.03, "loss": float("nan"), "accuracy": 0.7},
        splits={"val": {"auc": auc}, "test": {"auc": auc - 0.01}},
        history=({"epoch": 1, "auc": auc - 0.1}, {"epoch": 2, "auc": auc}),
    )


def test_comparison_holds_delong_numbers_and_derives_pairs_and_best(comparison):
    result, comp = comparison
    np.testing.assert_array_equal(comp.auc, result.auc)
    np.testing.assert_array_equal(np.array(comp.p, dtype=float), result.p)
    assert comp.best_resolution == [32, 64, 128, 256][int(np.argmax(result.auc))]
    pairs = comp.pairs()
    assert [(p.low, p.high) for p in pairs] == [(32, 64), (32, 128), (32, 256), (64, 128),
                                               (64, 256), (128, 256)]  # fmt: skip
    for pair in pairs:
        i, j = [32, 64, 128, 256].index(pair.low), [32, 64, 128, 256].index(pair.high)
        assert pair.difference == result.auc[j] - result.auc[i]
        assert pair.p_adjusted == result.p_adjusted[i, j]
    assert pairs[-1].p == 1.0 and comp.z[2][3] == 0.0


def test_results_round_trip_through_strict_json(comparison):
    _, comp = comparison
    failed = CellResult(Cell("Mass", 256, "resnet_tiny", 0), status="failed", reason="NaN loss")
    sweep = SweepResult("demo", (done_cell(32, 0.8), failed), {"Mass": comp}, (comp,))
    text = json.dumps(sweep.to_json(), allow_nan=False)  # strict: NaN became null
    back = SweepResult.from_json(json.loads(text))
    assert back.to_json() == json.loads(text)
    assert back.cells[0].metrics["loss"] is None and back.cells[0].history[1]["epoch"] == 2
    assert back.cells[1] == failed and not back.cells[1].done
    assert back.comparisons["Mass"] == Comparison.from_json(json.loads(text)["comparisons"]["Mass"])
    # a failed cell's JSON holds only what it has, as results.json always did
    assert failed.to_json() == {"label": "Mass", "resolution": 256, "arch": "resnet_tiny",
                                "seed": 0, "status": "failed", "reason": "NaN loss"}  # fmt: skip


def test_save_and_load_a_workdir(tmp_path, comparison):
    _, comp = comparison
    sweep = SweepResult("demo", (done_cell(32, 0.8), done_cell(64, 0.9)), {"Mass": comp})
    sweep.save(tmp_path)
    assert SweepResult.load(tmp_path) == SweepResult.from_json(sweep.to_json())
    with pytest.raises(FileNotFoundError, match=r"no results\.json"):
        SweepResult.load(tmp_path / "elsewhere")


def test_csv_and_console_views_show_the_typed_values(comparison):
    _, comp = comparison
    cells = (done_cell(32, 0.8), done_cell(64, 0.9))
    rows = list(csv.DictReader(io.StringIO(cells_csv(cells))))
    assert [float(r["auc"]) for r in rows] == [0.8, 0.9]
    assert [float(r["test_auc"]) for r in rows] == pytest.approx([0.79, 0.89])
    assert rows[0]["best_epoch"] == "2" and rows[0]["label"] == "Mass"
    text = console_summary(SweepResult("demo", cells, {"Mass": comp}))
    for r, a in zip(comp.resolutions, comp.auc, strict=True):
        assert f"{r:>8}px  {a:6.3f}" in text
    assert f"best resolution: {comp.best_resolution}px" in text
    assert text.count(" vs ") == len(comp.pairs())
