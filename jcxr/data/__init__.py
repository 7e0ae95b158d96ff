"""jcxr.data: dataset sources, patient-grouped splits, phantoms, shards and the grain pipeline.

Data flows one way: source CSV + images -> ``prepare`` -> pre-resized ArrayRecord shards ->
:class:`~jcxr.data.pipeline.Loader` -> uint8 batches -> on-device augmentation.
"""

from pathlib import Path

from jcxr.data.table import DataError, Table

SOURCES = ("nih", "chexpert", "phantom")
__all__ = ["SOURCES", "DataError", "Table", "load_table"]


def load_table(source: str, root: str | Path) -> Table:
    """Metadata of ``source`` at ``root`` (phantoms use the NIH layout), every image the source
    ships, with its official test set marked in ``Table.official_split`` where there is one."""
    from jcxr.data import chexpert, nih

    if source in ("nih", "phantom"):
        return nih.read_metadata(root)
    if source == "chexpert":
        return chexpert.read_dataset(root)
    raise DataError(f"unknown source {source!r}; choose one of {SOURCES}")
