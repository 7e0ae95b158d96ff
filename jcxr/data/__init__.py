"""jcxr.data: dataset sources, patient-grouped splits, phantoms, shards and the grain pipeline.

Data flows one way: source CSV + images -> ``prepare`` -> pre-resized ArrayRecord shards ->
:class:`~jcxr.data.pipeline.Loader` -> uint8 batches -> on-device augmentation.
"""

from pathlib import Path

from jcxr.data.table import DataError, Table

SOURCES = ("nih", "chexpert", "padchest", "openi", "phantom")
# Sources a study needs that jcxr cannot read yet: named so that a config using one stops at
# validation with the reason, not later with a missing file.
NOT_YET: dict[str, str] = {}
# cohorts a source can be read as (``load_table(..., preset=)``, ``prepare --preset``)
PRESETS = {"padchest": ("cardenas2020",), "openi": ("cardenas2020",)}
__all__ = ["PRESETS", "SOURCES", "DataError", "Table", "check_source", "load_table"]


def check_source(source: str, *, field: str = "source") -> None:
    """Raise :class:`DataError` unless jcxr can read ``source``; the message names ``field``."""
    if source in NOT_YET:
        raise DataError(f"{field} = {source!r}: {NOT_YET[source]}")
    if source not in SOURCES:
        raise DataError(f"{field} = {source!r}; expected one of {list(SOURCES)}")


def load_table(source: str, root: str | Path, preset: str | None = None) -> Table:
    """Metadata of ``source`` at ``root`` (phantoms use the NIH layout), every image the source
    ships, with its official test set marked in ``Table.official_split`` where there is one;
    with a ``preset`` (:data:`PRESETS`), the cohort of a study (e.g. PadChest's and OpenI's
    ``cardenas2020``: PA cardiomegaly against normal)."""
    from jcxr.data import chexpert, nih, openi, padchest

    check_source(source)
    if preset is not None and preset not in PRESETS.get(source, ()):
        raise DataError(
            f"preset {preset!r} is not one of {source}'s; expected one of "
            f"{list(PRESETS.get(source, ()))}"
        )
    if source in ("nih", "phantom"):
        return nih.read_metadata(root)
    if source == "padchest":
        return padchest.read_metadata(root, preset=preset)
    if source == "openi":
        return openi.read_metadata(root, preset=preset)
    return chexpert.read_dataset(root)
