"""What the report's methods section needs to know about a run that only the run knows: the
cohort of every label (split sizes, positives, patients) and how, where and with what code it
was made. Both go into ``results.json``."""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import jax
import numpy as np

from jcxr.data.label_data import LabelData


def cohort(data: LabelData) -> dict:
    """Per split (with k-fold: per fold, and the test set): images, positives and patients of
    ``data``, and the loss's positive weight (of all folds together)."""
    splits = {}
    parts = data.splits
    if data.folds:
        parts = {f"fold {k}": rows for k, rows in enumerate(data.folds)}
        parts.update({"test": data.splits["test"]} if "test" in data.splits else {})
    for name, rows in parts.items():
        entry = {"images": len(rows), "positives": int(np.sum(data.labels[rows] == 1))}
        if data.patient_ids is not None:
            entry["patients"] = int(np.unique(data.patient_ids[rows]).size)
        splits[name] = entry
    return {"splits": splits, "positive_weight": float(data.positive_weight)}


def provenance(config, started: float, finished: float) -> dict:
    """jcxr version and commit, the config's hash, the machine, devices and wall time."""
    text = config.to_json(indent=2)
    return {
        "jcxr_version": _version(),
        "git_commit": _commit(),
        "config_sha256": hashlib.sha256(text.encode()).hexdigest()[:16],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "jax": f"JAX {jax.__version__} on {jax.default_backend()}",
        "devices": [str(d) for d in jax.devices()],
        "started": datetime.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "wall_seconds": round(finished - started, 1),
    }


def _version() -> str:
    try:
        return metadata.version("jcxr")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _commit() -> str | None:
    """The git commit of the jcxr source, with "+changes" when the tree is dirty; None outside
    a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                                capture_output=True, text=True, timeout=10)  # fmt: skip
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
