"""Convergence flags per cell and training until validation AUC plateaus
(jcxr.convergence, config.train.until_plateau)."""

import json
import re
import shutil

import pytest

from jcxr import convergence
from jcxr.summary import console_summary
from jcxr.train.config import validate
from jcxr.train.sweep import run_sweep

from .helpers import tiny_config
from .test_train import load_config


def epoch(auc, se=0.02, train_loss=0.5):
    return {"auc": auc, "auc_se": se, "train_loss": train_loss}


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([epoch(0.70), epoch(0.80), epoch(0.75)], ()),
        ([epoch(0.70), epoch(0.80)], ("still_improving",)),
        ([epoch(0.80)], ("still_improving",)),  # one epoch shows nothing converged
        ([epoch(0.80), epoch(0.80)], ()),  # the first of equal AUCs is the best, as kept
        # chance: 0.55 - 1.96 x 0.03 = 0.491 <= 0.5; 0.56 - 1.96 x 0.03 = 0.501 is not
        ([epoch(0.55, 0.03), epoch(0.52, 0.03)], ("at_chance",)),
        ([epoch(0.56, 0.03), epoch(0.52, 0.03)], ()),
        ([epoch(0.7, train_loss=0.4), epoch(0.6, train_loss=0.61)], ("diverged",)),
        ([epoch(0.7, train_loss=0.4), epoch(0.6, train_loss=0.59)], ()),
        (
            [epoch(0.5, 0.1, 0.4), epoch(0.6, 0.1, 1.0)],
            ("still_improving", "at_chance", "diverged"),
        ),
    ],
)
def test_flags_from_a_history(history, expected):
    assert convergence.flags(history) == expected


def test_plateau_is_patience_epochs_without_a_better_auc():
    history = [epoch(0.7), epoch(0.8), epoch(0.8), epoch(0.79)]
    assert not convergence.plateaued(history[:2], 2) and not convergence.plateaued(history[:3], 2)
    assert convergence.plateaued(history, 2) and not convergence.plateaued(history, 3)
    assert not convergence.plateaued([], 1)


def test_patience_is_checked():
    for bad in (0, -1, True):
        config = load_config("demo")
        config.train.patience = bad
        with pytest.raises(ValueError, match=r"config.train.patience = .*expected a number of ep"):
            validate(config)


def test_until_plateau_stops_where_auc_stops_improving_also_after_a_resume(
    phantom_shards, tmp_path
):
    """Learning rate 0 and precise statistics: every epoch's validation is the first's, so with
    patience 2 the cell stops after epoch 3 of at most 6, and a rerun of the finished-but-
    unwritten cell trains nothing more."""
    config = tiny_config(phantom_shards, train__epochs=6, train__until_plateau=True,
                         train__patience=2, optim__learning_rate=0.0)  # fmt: skip
    (cell,) = run_sweep(config, tmp_path).cells
    assert [e["epoch"] for e in cell.history] == [1, 2, 3] and cell.best_epoch == 1
    assert cell.steps == 3 * 10  # 167 training images, batches of 16: 10 steps per epoch
    # killed after the last checkpoint, before result.json: the rerun stops where it stopped
    folder = tmp_path / "cells" / "Mass__resnet_tiny__r32__s0"
    (folder / "result.json").unlink()
    shutil.rmtree(tmp_path / "report.html", ignore_errors=True)
    (again,) = run_sweep(config, tmp_path).cells
    assert again.history == cell.history and again.steps == cell.steps
    config.train.until_plateau = False  # without it, all 6 epochs (another config: --fresh)
    (full,) = run_sweep(config, tmp_path / "full").cells
    assert len(full.history) == 6 and full.steps == 60


def test_flags_reach_results_console_csv_report_and_wandb(phantom_shards, tmp_path, monkeypatch):
    """One epoch per cell: its best epoch is its last, so every cell is flagged."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    config = tiny_config(phantom_shards, train__epochs=1, logging__wandb="offline")
    config.sweep.resolutions = (32, 48)
    result = run_sweep(config, tmp_path)
    assert all(c.flags[:1] == ("still_improving",) for c in result.cells)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert all("still_improving" in c["flags"] for c in saved["cells"])
    console = console_summary(result)
    assert "check: 32 px, seed 0: still improving: the best epoch is the last" in console
    assert "check: 48 px, seed 0: still improving" in console
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert rows[0].endswith(",flags") and all("still_improving" in r for r in rows[1:])
    html = (tmp_path / "report.html").read_text()
    assert html.count('<tr class="flagged">') == 2 and "<th>convergence</th>" in html
    assert "check these cells" in html
    logs = [r.read_bytes() for r in (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")]
    # each cell's run summary: the key, then its JSON value (wandb 0.31's record encoding)
    summary = re.compile(rb'\x05flags\x82\x01.\["still_improving"', re.DOTALL)
    assert sum(bool(summary.search(log)) for log in logs) == 2
    (table,) = (tmp_path / "wandb").glob("offline-run-*/files/media/table/cells_*")
    table = json.loads(table.read_text())
    column = table["columns"].index("flags")
    assert all(row[column].startswith("still improving") for row in table["data"])
