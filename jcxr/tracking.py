"""Console output, progress bars and Weights & Biases runs for a sweep.

One W&B run per cell (group = sweep name, job type = label, the full config), plus a summary run
with the tables and figures. Mode ``offline`` writes runs under ``WORKDIR/wandb`` for a later
``wandb sync``; W&B failing (no network, bad key) is reported once and never stops training.
Cells trained side by side (one per device, in threads) each have their own run. With several
processes only process 0 logs.

It lives outside :mod:`jcxr.train` so that the report (``python -m jcxr.report --wandb``) can
publish without importing the trainer. A cell is anything with ``id``, ``label`` and the
fields of :class:`jcxr.results.Cell`.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

from jcxr.convergence import describe
from jcxr.results import CellResult, SweepResult


class Tracker:
    def __init__(self, config, workdir: Path, *, mode: str | None = None, progress: bool = True):
        self.config = config
        self.workdir = workdir
        import jax

        self.mode = os.environ.get("WANDB_MODE") or mode or config.logging.wandb
        self.primary = jax.process_index() == 0
        if not self.primary:
            self.mode = "disabled"
        if self.mode == "online" and not _has_api_key():
            self.info("W&B: no API key found; logging offline (sync later with `wandb sync`)")
            self.mode = "offline"
        self.show_progress = progress and self.primary
        self.runs = {}  # cell id -> W&B run
        self.lock = threading.Lock()

    def info(self, message: str) -> None:
        if self.primary:
            print(message, flush=True)

    def progress(self, iterable, desc: str, total: int, initial: int = 0):
        from tqdm import tqdm

        return tqdm(
            iterable,
            desc=desc,
            total=total,
            initial=initial,
            unit="step",
            leave=False,
            disable=not self.show_progress,
            file=sys.stderr,
        )

    def _safely(self, what: str, fn):
        if self.mode == "disabled":
            return None
        try:
            return fn()
        except Exception as error:
            warnings.warn(f"W&B {what} failed ({error}); continuing without W&B", stacklevel=3)
            self.mode = "disabled"
            return None

    def _init(self, **kwargs):
        """``wandb.init`` in the tracker's mode, waiting at most
        ``config.logging.wandb_init_timeout`` seconds online. An online init that fails or times
        out (no network, service down) switches the tracker to offline for the rest of the
        sweep, so every metric is still kept for ``wandb sync``."""
        import wandb

        timeout = float(self.config.logging.get("wandb_init_timeout", 30.0))
        settings = wandb.Settings(init_timeout=timeout)
        kwargs = dict(dir=str(self.workdir), reinit="create_new", settings=settings, **kwargs)
        try:
            return wandb.init(mode=self.mode, **kwargs)
        except Exception as error:
            if self.mode != "online":
                raise
            warnings.warn(
                f"W&B online init failed within {timeout:g} s ({error}); logging offline for the "
                f"rest of the sweep: `wandb sync {self.workdir / 'wandb'}` later",
                stacklevel=3,
            )
            self.mode = "offline"
            return wandb.init(mode=self.mode, **kwargs)

    def start_cell(self, cell, extra: dict) -> None:
        def start():
            fields = {"label": cell.label, "resolution": cell.resolution, "arch": cell.arch,
                      "seed": cell.seed, "fold": cell.fold}  # fmt: skip
            config = {**self.config.to_dict(), "cell": {**fields, **extra}}
            with self.lock:
                return self._init(
                    project=self.config.logging.project,
                    group=self.config.name,
                    job_type=cell.label,
                    name=cell.id,
                    config=config,
                )

        run = self._safely("init", start)
        if run is not None:
            self.runs[cell.id] = run

    def step(self, cell, step: int, metrics: dict) -> None:
        run = self.runs.get(cell.id)
        if run is not None:
            self._safely(
                "log", lambda: run.log({f"train/{k}": v for k, v in metrics.items()}, step=step)
            )

    def epoch(self, cell, metrics: dict, step: int) -> None:
        """``metrics``: validation metrics, plus ``train_loss`` (the epoch's mean)."""
        self.info(
            f"{cell.id} epoch {metrics['epoch']}: train loss {metrics['train_loss']:.4f}  "
            f"val loss {metrics['loss']:.4f} AUC {metrics['auc']:.4f} "
            f"acc {metrics['accuracy']:.3f}"
        )
        run = self.runs.get(cell.id)
        if run is not None:
            logged = {f"val/{k}": v for k, v in metrics.items() if k != "train_loss"}
            logged["train/epoch_loss"] = metrics["train_loss"]
            self._safely("log", lambda: run.log(logged, step=step))

    def finish_cell(self, cell, result: CellResult) -> None:
        run = self.runs.pop(cell.id, None)
        if run is None:
            return

        def finish():
            if result.done:
                run.summary.update(
                    {
                        "auc": result.metrics["auc"],
                        "auc_se": result.metrics.get("auc_se"),
                        "best_epoch": result.best_epoch,
                        "flags": list(result.flags),
                    }
                )
            run.summary["status"] = result.status
            with self.lock:
                run.finish()

        self._safely("finish", finish)

    def close(self) -> None:
        """Wait until W&B has written (offline) or sent (online) every run.

        ``run.finish()`` can return before W&B's service has flushed a run's file; without this
        a script that reads or syncs the offline runs right after the sweep may find one short.
        """
        wandb = sys.modules.get("wandb")
        if wandb is not None:
            self._safely("teardown", wandb.teardown)

    def summary_run(self, results: SweepResult, figures: list[Path], report: Path) -> None:
        def publish():
            import wandb

            run = self._init(
                project=self.config.logging.project,
                group=self.config.name,
                job_type="summary",
                name=f"{self.config.name}-summary",
                config=self.config.to_dict(),
            )
            columns = ["label", "resolution", "arch", "seed", "fold", "status", "auc", "auc_se",
                       "test_auc", "external_auc", "external_p_vs_test", "flags"]  # fmt: skip
            table = wandb.Table(columns=columns)
            for c in results.cells:
                k = c.cell
                table.add_data(k.label, k.resolution, k.arch, k.seed, c.fold_text, c.status,
                               c.metrics.get("auc"), c.metrics.get("auc_se"),
                               c.splits.get("test", {}).get("auc"),
                               c.splits.get("external", {}).get("auc"),
                               c.splits.get("external", {}).get("p_vs_test"),
                               describe(c.flags))  # fmt: skip
            compared = wandb.Table(columns=["label", "arch", "seeds", "method", "unit",
                                            "n_clusters", "resolution", "auc", "sd"])  # fmt: skip
            for label, comp in results.comparisons.items():
                seeds = comp.seed_text
                for r, a, s in zip(comp.resolutions, comp.auc, comp.se, strict=True):
                    compared.add_data(label, comp.arch, seeds, comp.method, comp.unit_text,
                                      comp.n_clusters, r, a, s)  # fmt: skip
                run.summary[f"{label}/unit"] = comp.unit_text
                run.summary[f"{label}/best_resolution"] = comp.best_resolution
                if comp.sufficient:
                    run.summary[f"{label}/sufficient_resolution"] = comp.sufficient_resolution
                    run.summary[f"{label}/noninferiority_margin"] = comp.sufficient["margin"]
                    run.summary[f"{label}/noninferiority_reference"] = comp.sufficient["reference"]
                if comp.power_80 and comp.power_80["n_positive"] is not None:
                    run.summary[f"{label}/positives_for_80pct_power"] = comp.power_80["n_positive"]
            run.log({"cells": table, "comparisons": compared,
                     **{f.stem: wandb.Image(str(f)) for f in figures}})  # fmt: skip
            run.summary["report"] = str(report)
            run.finish()

        self._safely("summary", publish)


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text()
