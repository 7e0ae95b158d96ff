"""A config's data: its shards (made first where the config allows) and each label's splits.

The one place where ``config.data`` is unpacked into the arguments of :mod:`jcxr.data`, which
never sees a config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jcxr.data.label_data import LabelData, label_data
from jcxr.data.provision import ensure_shards


def shards_for(config, workdir: Path, log: Callable[[str], None] = print) -> Path:
    """The shards for ``config``: ``config.data.shards`` as they are, or the run's own under
    ``WORKDIR/shards`` (phantoms drawn into ``WORKDIR/phantoms`` first) where
    ``data.prepare_if_missing`` allows."""
    d = config.data
    own = d.source == "phantom" and d.prepare_if_missing and not d.shards
    root = Path(d.root) if d.root else (workdir / "phantoms" if d.source == "phantom" else None)
    return ensure_shards(
        Path(d.shards) if d.shards else workdir / "shards",
        source=d.source,
        root=root,
        resolutions=config.sweep.resolutions,
        make_if_missing=d.prepare_if_missing,
        own_phantoms=(d.phantom_images, d.phantom_seed) if own else None,
        resize=d.resize,
        progress=config.logging.progress,
        log=log,
    )


def external_phantoms(config, workdir: Path, log: Callable[[str], None] = print) -> Path:
    """``config.eval.external = "phantoms"``: a second hospital of phantoms (another seed and
    scanner, OpenI's layout: :mod:`jcxr.data.phantom_hospital`), half as many as the first,
    drawn into ``WORKDIR/external_phantoms`` and prepared into ``WORKDIR/external_shards``."""
    from jcxr.data import load_table, phantom_hospital, shards

    root, out = workdir / "external_phantoms", workdir / "external_shards"
    count = max(config.data.phantom_images // 2, 100)
    log(f"external set: {count} phantoms of a second hospital in {root}")
    phantom_hospital.generate(root, count, seed=config.data.phantom_seed + 1)
    wanted = set(config.sweep.resolutions)
    if (out / shards.MANIFEST).is_file() and wanted <= set(
        shards.read_manifest(out)["resolutions"]
    ):
        return out
    shards.prepare(load_table("openi", root), root, out, sorted(wanted), method=config.data.resize,
                   progress=config.logging.progress, log=log)  # fmt: skip
    return out


def label_data_for(config, shards: Path, label: str) -> LabelData:
    """``label``'s splits and loss weight as ``config.data`` and ``config.eval`` describe them."""
    d = config.data
    return label_data(
        shards,
        label,
        train_fraction=d.train_fraction,
        val_fraction=d.val_fraction,
        test_split=d.test_split,
        subsample_size=d.subsample_size,
        split_seed=d.split_seed,
        split_by=d.split_by,
        study_level=config.eval.study_level,
        folds=d.folds,
    )
