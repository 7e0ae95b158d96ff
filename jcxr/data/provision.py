"""The shards a run needs: found where they are, or made (phantoms first) where that is allowed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from jcxr.data import check_source, load_table, phantom, shards
from jcxr.data.table import DataError


def ensure_shards(
    out: Path,
    *,
    source: str,
    root: Path | None,
    resolutions: Sequence[int],
    make_if_missing: bool,
    own_phantoms: tuple[int, int] | None = None,
    resize: str = "bilinear",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Shards of ``source`` at every one of ``resolutions`` px in ``out``; returns ``out``.

    Shards already there at every resolution are used as they are. ``make_if_missing``
    prepares the missing resolutions from the images under ``root`` (keeping those there);
    otherwise a missing resolution is an error that says how to prepare it.

    ``own_phantoms = (images, seed)``: ``out`` is the run's own phantom shards, drawn into
    ``root``. They must be of the phantoms it would draw now (count, seed and drawing version,
    recorded in the manifest): shards of other phantoms are remade, and anything else at
    ``out`` is someone's data, an error, never removed.
    """
    check_source(source)
    wanted = sorted(set(resolutions))
    made_from = phantom.signature(*own_phantoms) if own_phantoms else None
    manifest = shards.read_manifest(out) if (out / shards.MANIFEST).is_file() else None
    # shards named by the caller are used as they are; the run's own must be of its phantoms
    current = manifest is not None and (not own_phantoms or manifest.get("phantoms") == made_from)
    if current:
        _check_holds(out, manifest, source)
        if set(wanted) <= set(manifest["resolutions"]):
            return out
        wanted = sorted(set(wanted) | set(manifest["resolutions"]))  # keep the ones there
    if not make_if_missing:
        raise DataError(
            f"{out}: no shards at {wanted} px. Prepare them once with\n  python -m jcxr.data "
            f"prepare --source {source} --root {root or 'DATASET_ROOT'} --resolutions "
            f"{','.join(map(str, wanted))} --out {out}\nand set config.data.shards={out}"
        )
    if root is None:
        raise DataError(f"{out}: no shards at {wanted} px and no dataset root to prepare them from")
    if own_phantoms:
        images, seed = own_phantoms
        log(f"phantoms: {images} images in {root}")
        phantom.generate(root, images, seed=seed)
    table = load_table(source, root)
    if own_phantoms and manifest is not None and not current:
        _discard_stale_phantom_shards(out, manifest, table.csv_sha256, log)
    log(f"shards: {len(table)} images at {wanted} px -> {out}")
    shards.prepare(
        table,
        root,
        out,
        wanted,
        method=resize,
        progress=progress,
        provenance={"phantoms": made_from} if own_phantoms else None,
        log=log,
    )
    return out


# Phantoms are drawn in NIH ChestX-ray14's on-disk layout and read by its reader.
READ_AS = {"phantom": "nih"}


def _check_holds(out: Path, manifest: dict, source: str) -> None:
    """Shards of another source than the run asks for are an error, never silently used."""
    if manifest["source"] != READ_AS.get(source, source):
        raise DataError(
            f"{out / shards.MANIFEST}: the shards hold {manifest['source']!r} images, but the "
            f"run's source is {source!r}; point config.data.shards at {source} shards or set "
            f"config.data.source = {manifest['source']!r}"
        )


def _discard_stale_phantom_shards(out: Path, manifest: dict, csv_sha256: str, log) -> None:
    """Remove the shards at ``out``, made from other phantoms (another count, seed or drawing
    version) than the run would make now.

    Only shards provably made from phantoms are removed: their manifest names phantoms or was
    made from this very phantom CSV. Anything else at ``out`` is someone's data: an error.
    """
    if "phantoms" not in manifest and manifest.get("source_csv_sha256") != csv_sha256:
        raise DataError(
            f"{out} holds shards this sweep did not make (source {manifest.get('source')!r}, "
            "another CSV, no phantom signature); remove them, or set config.data.shards to "
            "use them as they are"
        )
    log(f"shards at {out} were made from other phantoms ({manifest.get('phantoms')}); remaking")
    shards.remove_shards(out)
