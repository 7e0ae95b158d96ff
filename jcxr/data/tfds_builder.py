"""The shards as a TF-free tensorflow-datasets dataset, for tfds users.

    python -m jcxr.data tfds SHARDS [--out DIR] [--resolutions 64,320]

writes one builder config per resolution (``res{R}``, ``array_record`` format) under
``DIR/jcxr_shards/res{R}/1.0.0`` (default ``DIR`` = ``SHARDS/tfds``). Anyone can open it
without jcxr or TensorFlow::

    import tensorflow_datasets as tfds
    source = tfds.builder_from_directory("SHARDS/tfds/jcxr_shards/res320/1.0.0")
    images = source.as_data_source()["train"]   # images[i]["image"]: [R, R] uint8

One split, ``train``, holds every image (splits are made per label at training time). tfds
stores examples in its own order; ``record`` is the image's index in the shards' ``index.npz``.
Labels are float32 with NaN for "excluded" (see :class:`~jcxr.data.table.Table`).

jcxr itself keeps reading plain ArrayRecord: the tfds copy decodes a protobuf per example and
reads several times slower (``bench/data.py --tfds``; figures in docs/benchmarks.md).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from jcxr.data.shards import (
    decode_header,
    decode_pixels,
    read_index,
    read_manifest,
    shard_paths,
)
from jcxr.data.table import DataError

NAME = "jcxr_shards"


def builder(shards: str | Path, resolution: int, data_dir: str | Path):
    """A tfds builder over ``shards`` at ``resolution``; ``download_and_prepare()`` writes it."""
    import dataclasses

    shards = Path(shards)
    manifest = read_manifest(shards)
    if resolution not in manifest["resolutions"]:
        raise DataError(
            f"{shards}: no shards at {resolution} px; prepared resolutions are "
            f"{manifest['resolutions']}"
        )
    config = dataclasses.replace(
        _builder_class().BUILDER_CONFIGS[0],
        name=f"res{resolution}",
        description=f"{manifest['source']} at {resolution} px ({manifest['resize']})",
        shards=str(shards),
        resolution=resolution,
    )
    return _builder_class()(data_dir=str(data_dir), config=config, file_format="array_record")


@functools.cache
def _builder_class():
    """Defined once per process (tfds registers builder classes by name)."""
    import dataclasses

    import tensorflow_datasets as tfds

    @dataclasses.dataclass
    class ShardsConfig(tfds.core.BuilderConfig):
        shards: str = ""
        resolution: int = 0

    class JcxrShards(tfds.core.GeneratorBasedBuilder):
        """Pre-resized chest radiographs from jcxr shards (one grey uint8 channel)."""

        name = NAME
        VERSION = tfds.core.Version("1.0.0")
        BUILDER_CONFIGS = (ShardsConfig(name="res0"),)  # the real one is passed in

        def _info(self):
            r, manifest = self.builder_config.resolution, read_manifest(self.builder_config.shards)
            label_names = manifest["label_names"]
            features = tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(r, r), dtype=np.uint8),
                    "labels": tfds.features.Tensor(shape=(len(label_names),), dtype=np.float32),
                    "record": tfds.features.Scalar(dtype=np.int64),
                    "image_id": tfds.features.Text(),
                    "patient_id": tfds.features.Text(),
                    "view": tfds.features.Text(),
                }
            )
            return tfds.core.DatasetInfo(
                builder=self,
                description=f"jcxr shards of {manifest['source']}; labels: {label_names}",
                features=features,
                metadata=tfds.core.MetadataDict(
                    label_names=label_names,
                    source_csv_sha256=manifest["source_csv_sha256"],
                    resize=manifest["resize"],
                ),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            from array_record.python.array_record_module import ArrayRecordReader

            shards, r = Path(self.builder_config.shards), self.builder_config.resolution
            labels = read_index(shards, r).labels
            record = 0
            for path in shard_paths(shards, r):
                reader = ArrayRecordReader(path)
                for raw in reader.read_all():
                    header = decode_header(raw)
                    yield (
                        record,
                        {
                            "image": decode_pixels(raw, r),
                            "labels": labels[record].astype(np.float32),
                            "record": record,
                            "image_id": header["image_id"],
                            "patient_id": header["patient_id"],
                            "view": header["view"],
                        },
                    )
                    record += 1
                reader.close()

    return JcxrShards


def export(
    shards: str | Path, resolutions: list[int] | None = None, out: str | Path | None = None
) -> list[Path]:
    """Write the tfds dataset for each resolution (all prepared ones by default).

    tfds writes into an ``incomplete.*`` folder and renames it when done, so an interrupted
    export leaves nothing that opens as complete. Returns each config's directory.
    """
    shards = Path(shards)
    out = Path(out) if out else shards / "tfds"
    resolutions = resolutions or read_manifest(shards)["resolutions"]
    written = []
    for r in resolutions:
        b = builder(shards, r, out)
        b.download_and_prepare()
        written.append(Path(b.data_dir))
    return written
