"""A workdir remembers what made it: each cell's folder records a fingerprint of everything that
determines its result, so a rerun never reuses (or resumes) work made by another config or
other shards.

The fingerprint holds the config values that can change a cell's result and the shards' own
record of their content (source CSV hash, resize, square and every shard's checksum at the
cell's resolution). Fields that cannot change a result are left out, so changing them needs
nothing: ``name``, ``logging.*``, ``parallel.*`` (devices, placement: the same update on 1 or N
devices), ``sweep.*`` (which cells exist, not what one of them computes), where the data are
(``data.shards``, ``data.root``, ``data.prepare_if_missing``: their content is fingerprinted),
the logging and checkpoint cadence (exact resume) and evaluation settings of the comparison
(``eval.batch_size``, ``eval.compare_on``, ``eval.reference_resolution``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from jcxr._io import atomic_write_text
from jcxr.data import shards as shard_store
from jcxr.data.table import DataError
from jcxr.results import Cell
from jcxr.train.config import defaults as config_defaults

FILE = "fingerprint.json"
FREE_SECTIONS = ("logging", "parallel", "sweep")
FREE_FIELDS = (
    "name",
    "data.shards",
    "data.root",
    "data.prepare_if_missing",
    "train.log_every",
    "train.checkpoint_every",
    "eval.batch_size",
    "eval.compare_on",
    "eval.reference_resolution",
    # where the networks look is mapped after training, from the checkpoints
    "eval.localise",
    "eval.localise_images",
    "eval.localise_method",
    "eval.localise_layer",
)


class StaleWorkdir(DataError):
    """Cells in the workdir were made by another config or other shards."""


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(_flat(value, name + ".") if isinstance(value, dict) else {name: value})
    return out


def fingerprint(config, cell: Cell, manifest: dict) -> dict:
    """What determines ``cell``'s result under ``config`` on the shards of ``manifest``
    (JSON-ready)."""
    values = _flat(json.loads(config.to_json()))
    kept = {
        f"config.{name}": value
        for name, value in sorted(values.items())
        if name.split(".")[0] not in FREE_SECTIONS and name not in FREE_FIELDS
    }
    checksums = "".join(s["sha256"] for s in manifest["shards"][str(cell.resolution)])
    kept["shards.source"] = manifest["source"]
    kept["shards.source_csv_sha256"] = manifest.get("source_csv_sha256")
    kept["shards.resize"] = manifest.get("resize")
    kept["shards.square"] = manifest.get("square")
    kept[f"shards.res{cell.resolution}"] = hashlib.sha256(checksums.encode()).hexdigest()[:16]
    return {"cell": cell.id, **kept}


# Config fields whose default changed what jcxr does: the value that does what jcxr did
# before the field existed. Every other field's default keeps the old behaviour.
BEFORE_IT_EXISTED = {"config.train.precise_bn_images": 0}


def _recorded(name: str, recorded: dict):
    """``name``'s value in a recorded fingerprint; for a config field newer than the
    fingerprint, the value that does what jcxr did before the field existed."""
    if name in recorded or not name.startswith("config."):
        return recorded.get(name)
    if name in BEFORE_IT_EXISTED:
        return BEFORE_IT_EXISTED[name]
    return _default_values().get(name.removeprefix("config."))


@functools.cache
def _default_values() -> dict:
    """Every config field's default, flat (``"train.epochs"``): built once, not per cell."""
    return _flat(json.loads(config_defaults().to_json()))


def check_workdir(
    config,
    cells: list[Cell],
    shards: Path,
    workdir: Path,
    *,
    fresh: bool = False,
    write: bool = True,
    log: Callable[[str], None] = print,
) -> None:
    """Record each cell's fingerprint; stop if a cell's folder holds work of another one.

    With ``fresh`` such cells' folders are removed (with a log line) and they train again.
    Cells whose folder has no fingerprint (made before jcxr recorded one) get the current one.
    A config field newer than a recorded fingerprint is no change while it does what jcxr did
    before the field existed: its default, or its value in :data:`BEFORE_IT_EXISTED`.
    ``write=False`` (every process but the first) checks without writing.
    """
    manifest = shard_store.read_manifest(shards)
    stale = {}
    for cell in cells:
        folder = workdir / "cells" / cell.id
        now = fingerprint(config, cell, manifest)
        path = folder / FILE
        if path.is_file():
            try:
                recorded = json.loads(path.read_text())
            except json.JSONDecodeError:
                recorded = {}  # cut short by a kill while it was written: unknowable, so stale
            changed = {
                k: (_recorded(k, recorded), now.get(k))
                for k in sorted(set(recorded) | set(now))
                if _recorded(k, recorded) != now.get(k)
            }
            if changed:
                stale[cell] = changed
                continue
        elif folder.is_dir() and any(folder.iterdir()):
            log(f"{folder}: made before jcxr recorded fingerprints; taken as made by this config")
        if write:
            atomic_write_text(path, json.dumps(now, indent=2))
    if not stale:
        return
    if fresh:
        for cell in stale:
            log(f"{cell.id}: made by another config or other shards; removed to train again")
            if write:
                shutil.rmtree(workdir / "cells" / cell.id)
                now = fingerprint(config, cell, manifest)
                atomic_write_text(workdir / "cells" / cell.id / FILE, json.dumps(now, indent=2))
        return
    fields = {}
    for changed in stale.values():
        for name, (old, new) in changed.items():
            fields.setdefault(name, (old, new))
    lines = "\n".join(f"  {name}: {old!r} -> {new!r}" for name, (old, new) in fields.items())
    raise StaleWorkdir(
        f"{workdir}: {len(stale)} of {len(cells)} cells were trained with another config or "
        f"other shards; what changed:\n{lines}\nRerun with --fresh to train them again (their "
        "checkpoints and results are removed), or use a new --workdir"
    )
