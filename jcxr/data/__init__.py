"""jcxr.data: dataset sources, patient-grouped splits, phantoms, shards and the grain pipeline.

Data flows one way: source CSV + images -> ``prepare`` -> pre-resized ArrayRecord shards ->
:class:`~jcxr.data.pipeline.Loader` -> uint8 batches -> on-device augmentation.
"""

from pathlib import Path

from jcxr.data.table import DataError, Table

SOURCES = ("nih", "chexpert", "phantom")
# Sources a study needs that jcxr cannot read yet: named so that a config using one stops at
# validation with the reason, not later with a missing file.
NOT_YET = {
    "padchest": "jcxr has no PadChest/OpenI source yet; Cardona Cardenas et al. 2020's recipe "
    "cannot run until one is added",
}
__all__ = ["SOURCES", "DataError", "Table", "check_source", "load_table"]


def check_source(source: str, *, field: str = "source") -> None:
    """Raise :class:`DataError` unless jcxr can read ``source``; the message names ``field``."""
    if source in NOT_YET:
        raise DataError(f"{field} = {source!r}: {NOT_YET[source]}")
    if source not in SOURCES:
        raise DataError(f"{field} = {source!r}; expected one of {list(SOURCES)}")


def load_table(source: str, root: str | Path) -> Table:
    """Metadata of ``source`` at ``root`` (phantoms use the NIH layout), every image the source
    ships, with its official test set marked in ``Table.official_split`` where there is one."""
    from jcxr.data import chexpert, nih

    check_source(source)
    if source in ("nih", "phantom"):
        return nih.read_metadata(root)
    return chexpert.read_dataset(root)
