"""k-fold cross-validation as a sweep axis (config.data.folds): the folds, the pooled out-of-fold
comparison, the fold ensemble on the test set, and resume between folds."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from jcxr.data import nih, splits
from jcxr.data.label_data import label_data
from jcxr.data.shards import read_index
from jcxr.data.table import DataError
from jcxr.stats import delong
from jcxr.train.config import validate
from jcxr.train.sweep import run_sweep

from .helpers import tiny_config
from .test_data_sources import NIH_ROOT
from .test_parallel import TINY, run_python
from .test_train import load_config, run_cli

ID = "Mass__resnet_tiny__r{}__s0"


def test_folds_config_is_checked():
    for bad in (1, -2, True):  # the locked ConfigDict already refuses 2.5 and "5"
        config = load_config("demo")
        config.data.folds = bad
        with pytest.raises(ValueError, match=r"config.data.folds = .*expected 0 .* >= 2"):
            validate(config)


def test_hernia_variant_puts_every_positive_out_of_fold_once_on_real_nih_metadata():
    """Sabottke & Spieler 2020's Hernia: 227 positives, about 45 in a 20% hold-out; with the
    variant's 5 folds every one of them is scored out of fold, once, folds patient-disjoint."""
    config = load_config("sabottke2020", "H")
    validate(config)
    assert config.data.folds == 5 and config.sweep.labels == ("Hernia",)
    assert config.data.train_fraction + config.data.val_fraction == 1  # no test set
    table = nih.read_metadata(NIH_ROOT)
    sub = table.subset(splits.positive_enriched_subsample(
        table, "Hernia", size=config.data.subsample_size).rows)  # fmt: skip
    folds = splits.kfold(sub, config.data.folds, seed=config.data.split_seed)
    every = np.concatenate(folds)
    assert np.array_equal(np.sort(every), np.arange(len(sub)))  # each image in one fold
    positives = [int(np.sum(sub.label("Hernia")[f] == 1)) for f in folds]
    assert sum(positives) == 227 and min(positives) >= 40
    owners = [set(sub.patient_ids[f]) for f in folds]
    assert all(not (owners[i] & owners[j]) for i in range(5) for j in range(i + 1, 5))


def test_label_data_folds(phantom_shards):
    data = label_data(phantom_shards, "Mass", train_fraction=0.7, val_fraction=0.15, folds=3)
    table = read_index(phantom_shards, 32)
    patients = table.patient_ids
    test = data.splits["test"]
    pool = np.sort(np.concatenate([data.splits["train"], data.splits["val"]]))
    assert np.array_equal(np.sort(np.concatenate(data.folds)), pool)
    assert not set(patients[test]) & set(patients[pool])
    for k in range(3):
        task = data.fold(k)
        assert np.array_equal(task.splits["val"], data.folds[k])
        others = np.sort(np.concatenate([f for j, f in enumerate(data.folds) if j != k]))
        assert np.array_equal(task.splits["train"], others)
        assert np.array_equal(task.splits["test"], test)
        assert not set(patients[task.splits["train"]]) & set(patients[task.splits["val"]])
        y = data.labels[task.splits["train"]]
        assert task.positive_weight == np.sum(y == 0) / np.sum(y == 1)  # the fold's own
    # the subsample's weight is the subsample's in every fold (Sabottke & Spieler 2020)
    sub = label_data(phantom_shards, "Mass", train_fraction=0.8, val_fraction=0.2,
                     subsample_size=200, folds=2)  # fmt: skip
    assert sub.fold(0).positive_weight == sub.fold(1).positive_weight == sub.positive_weight
    # a fold without both classes stops before anything trains, naming the fold
    with pytest.raises(DataError, match=r"split of fold \d+ has 0 positives"):
        label_data(phantom_shards, "Mass", train_fraction=0.7, val_fraction=0.15, folds=60)


def test_three_fold_sweep_pools_out_of_fold_predictions(phantom_shards, tmp_path):
    config = tiny_config(phantom_shards, train__epochs=1, data__folds=3)
    config.sweep.resolutions = (32, 48)
    result = run_sweep(config, tmp_path)
    ids = [c.cell.id for c in result.cells]
    assert ids == [ID.format(r) + s for r in (32, 48) for s in ("__f0", "__f1", "__f2", "")]
    assert all(c.done for c in result.cells) and [c.folds for c in result.cells][3::4] == [3, 3]
    patients = read_index(phantom_shards, 32).patient_ids

    # the run's recorded indices: the test set in no fold; every other image validated once
    recorded = [dict(np.load(tmp_path / "splits" / f"Mass__f{k}.npz")) for k in range(3)]
    test = recorded[0]["test"]
    vals = [r["val"] for r in recorded]
    assert all(np.array_equal(r["test"], test) for r in recorded)
    pool = np.concatenate(vals)
    assert len(np.unique(pool)) == len(pool) and not set(pool) & set(test)
    for k, r in enumerate(recorded):
        assert not set(r["train"]) & set(test) and not set(r["train"]) & set(r["val"])
        assert np.array_equal(r["train"], np.sort(np.concatenate(vals[:k] + vals[k + 1 :])))
        assert not set(patients[r["val"]]) & set(patients[r["train"]])
        assert not set(patients[r["val"]]) & set(patients[test])

    # pooled out-of-fold predictions: each fold's own validation predictions, by record
    scores = {}
    for r in (32, 48):
        parts = [np.load(tmp_path / "cells" / (ID.format(r) + f"__f{k}") / "predictions_val.npz")
                 for k in range(3)]  # fmt: skip
        for k, p in enumerate(parts):
            assert np.array_equal(np.sort(p["record"]), vals[k])  # validated on its own fold
        record = np.concatenate([p["record"] for p in parts])
        order = np.argsort(record)
        oof = np.load(tmp_path / "cells" / ID.format(r) / "predictions_oof.npz")
        assert np.array_equal(oof["record"], record[order])
        assert np.array_equal(oof["score"], np.concatenate([p["score"] for p in parts])[order])
        assert np.array_equal(oof["fold"], np.repeat([0, 1, 2], [len(v) for v in vals])[order])
        labels = oof["label"]
        scores[r] = oof["score"]
    comp = result.comparisons["Mass"]
    assert comp.split == "oof" and comp.n_positive + comp.n_negative == len(pool)
    clusters = patients[oof["record"]] if comp.cluster_by == "patient" else None
    by_hand = delong(labels, np.stack([scores[32], scores[48]]), clusters=clusters)
    np.testing.assert_allclose(comp.auc, by_hand.auc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(comp.p[0][1], by_hand.pvalue[0, 1], rtol=1e-9)
    assert comp.auc[0] == pytest.approx(roc_auc_score(labels, scores[32]), abs=1e-12)

    # the test set: each fold's model, and the folds' mean probability, reported separately
    (ensemble,) = [c for c in result.all_comparisons if c.split == "test"]
    for i, r in enumerate((32, 48)):
        tests = [np.load(tmp_path / "cells" / (ID.format(r) + f"__f{k}") / "predictions_test.npz")
                 for k in range(3)]  # fmt: skip
        mean = np.mean([t["prob"] for t in tests], axis=0)
        expected = roc_auc_score(tests[0]["label"], mean)
        assert ensemble.auc[i] == pytest.approx(expected, abs=1e-12)
        pooled = result.cells[4 * i + 3]
        assert pooled.splits["test"]["auc"] == pytest.approx(expected, abs=1e-12)
        each = [c.splits["test"]["auc"] for c in result.cells[4 * i : 4 * i + 3]]
        assert pooled.splits["test_each_fold"]["auc_mean"] == pytest.approx(np.mean(each))

    # every view shows the folds
    csv_rows = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_rows[0].startswith("label,resolution,arch,seed,fold,")
    assert [row.split(",")[4] for row in csv_rows[1:]] == ["0", "1", "2", "pooled"] * 2
    html = (tmp_path / "report.html").read_text()
    assert "<th>fold</th>" in html and "out-of-fold (k-fold)" in html
    assert "3-fold cross-validation" in html
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["cohorts"]["Mass"]["splits"].keys() == {"fold 0", "fold 1", "fold 2", "test"}
    # a rerun without folds must not read the pooled folders as hold-out cells
    config.data.folds = 0
    with pytest.raises(DataError, match=r"config\.data\.folds: 3 -> 0"):
        run_sweep(config, tmp_path)


def test_a_kill_between_folds_resumes_the_next_fold_and_ends_as_an_uninterrupted_run(
    phantom_shards, tmp_path
):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    folds = "--config.data.folds=3"
    straight = subprocess.run(run_cli(tmp_path / "straight", phantom_shards, folds), env=env,
                              capture_output=True, text=True)  # fmt: skip
    assert straight.returncode == 0, straight.stderr[-2000:]
    workdir = tmp_path / "killed"
    # SIGKILL at fold 1's first checkpoint: fold 0 finished, fold 1 under way
    killer = textwrap.dedent(f"""
        import os, signal, sys
        from jcxr.train.checkpoints import Checkpoints
        original = Checkpoints.save
        def save(self, step, steps, meta):
            original(self, step, steps, meta)
            if self.manager.directory.parent.name.endswith("__f1"):
                os.kill(os.getpid(), signal.SIGKILL)
        Checkpoints.save = save
        sys.argv = {run_cli(workdir, phantom_shards, folds)[2:]!r}
        from jcxr.train.__main__ import run
        run()
    """)
    killed = subprocess.run([sys.executable, "-c", killer], env=env, capture_output=True)
    assert killed.returncode == -9
    cells = workdir / "cells"
    assert (cells / (ID.format(32) + "__f0") / "result.json").is_file()
    assert not (cells / (ID.format(32) + "__f1") / "result.json").exists()
    assert not (workdir / "results.json").exists()
    resumed = subprocess.run(run_cli(workdir, phantom_shards, folds), env=env,
                             capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = resumed.stdout
    assert f"{ID.format(32)}__f1: resuming at step " in out  # only its remaining steps trained
    assert f"{ID.format(32)}__f0 epoch" not in out  # the finished fold is read back
    assert f"{ID.format(32)}__f2 epoch 1:" in out
    a = json.loads((tmp_path / "straight" / "results.json").read_text())
    b = json.loads((workdir / "results.json").read_text())
    strip = lambda cells: [{k: v for k, v in c.items() if k != "seconds"} for c in cells]  # noqa: E731
    assert strip(a["cells"]) == strip(b["cells"]) and len(a["cells"]) == 4
    assert a["comparisons"] == b["comparisons"]


def test_fold_cells_spread_over_devices_and_show_their_fold_in_wandb(phantom_shards, tmp_path):
    """Per-device placement trains each fold as a cell of its own, on one device, with the
    same numbers as on a single device; every fold is its own W&B run and the summary table
    lists the folds beside the pooled cells."""
    out = run_python(
        TINY
        + textwrap.dedent(f"""
        import json
        from pathlib import Path
        from jcxr.train.sweep import run_sweep
        shards, work = {str(phantom_shards)!r}, Path({str(tmp_path)!r})
        runs = {{}}
        for name, changes in [("one_device", dict(parallel__devices=1)),
                              ("per_device", dict(parallel__placement="per_device",
                                                  logging__wandb="offline"))]:
            config = tiny(shards, train__epochs=1, data__folds=3, **changes)
            config.sweep.resolutions = (32, 48)
            result = run_sweep(config, work / name).to_json()
            runs[name] = {{"cells": result["cells"], "comparisons": result["comparisons"]}}
        print(json.dumps(runs))
        """),
        devices=4,
        env={"WANDB_MODE": "offline"},
    )
    one, spread = out["one_device"], out["per_device"]
    folds = [c for c in spread["cells"] if "fold" in c]
    assert [(c["resolution"], c["fold"]) for c in folds] == [(r, k) for r in (32, 48)
                                                              for k in range(3)]  # fmt: skip
    assert all(len(c["devices"]) == 1 for c in folds)
    assert len({c["devices"][0] for c in folds}) > 1  # the six folds shared the four devices
    assert all(c["devices"] == ["cpu:0"] for c in one["cells"] if "fold" in c)
    # the same program on the same numbers: each fold, the pooled cells and the comparison
    assert [c["metrics"] for c in spread["cells"]] == [c["metrics"] for c in one["cells"]]
    assert spread["comparisons"] == one["comparisons"]

    wandb_dir = tmp_path / "per_device" / "wandb"
    logs = [run.read_bytes() for run in wandb_dir.glob("offline-run-*/run-*.wandb")]
    assert len(logs) == 6 + 1  # a run per fold cell, and the sweep's summary
    for r, k in [(r, k) for r in (32, 48) for k in range(3)]:
        # each fold's run carries its cell, fold included, in its config
        cell = b'"resolution":%d,"arch":"resnet_tiny","seed":0,"fold":%d,' % (r, k)
        assert [cell in log for log in logs].count(True) == 1
    (table,) = wandb_dir.glob("offline-run-*/files/media/table/cells_*")
    table = json.loads(table.read_text())
    fold_column = table["columns"].index("fold")
    assert [row[fold_column] for row in table["data"]] == ["0", "1", "2", "pooled"] * 2
