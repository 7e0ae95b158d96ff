"""jcxr.data: dataset sources, patient-grouped splits, phantoms, shards and the grain pipeline.

Data flows one way: source CSV + images -> ``prepare`` -> pre-resized ArrayRecord shards ->
:class:`~jcxr.data.pipeline.Loader` -> uint8 batches -> on-device augmentation.
"""

from jcxr.data.table import DataError, Table

__all__ = ["DataError", "Table"]
