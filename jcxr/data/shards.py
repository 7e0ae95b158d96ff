"""Pre-resized ArrayRecord shards: decode every image once, resize to every resolution.

Layout of ``SHARDS/``::

    manifest.json                 counts, resize method, source CSV hash, shard checksums
    res{R}/index.npz              per-record image_id, patient_id, labels (N, L), view
                                  (+ study_id, official_split where the source has them)
    res{R}/{i:05d}-of-{n:05d}.array_record

A record is ``b"JCXR" + uint32 header length + JSON header + R*R uint8 pixels`` (one grey
channel, row-major), so a shard is readable without the index. Shards are written under a
temporary name and renamed when complete: a killed ``prepare`` leaves no shard that looks
finished, and rerunning it skips the shards already there.

Why this file is long (about 450 lines): it is the one owner of the on-disk format, its writer
(``prepare``: decoding, resizing, inputs, skips, resume) and its readers (manifest, index,
``verify``). Split, the record layout and the manifest's fields would live in two places that
must change together.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from jcxr._io import atomic_write_text, file_sha256
from jcxr.data import crop, images
from jcxr.data.table import DataError, Table
from jcxr.data.workers import pool as workers_pool

MAGIC = b"JCXR"
RESIZE = {"bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS, "area": Image.BOX}
SQUARE = ("crop", "pad")
MANIFEST = "manifest.json"
INPUTS = ".inputs.json"  # what a prepare under way was asked to make
SKIPPED = ".skipped.json"
RECORDS_PER_SHARD = 1024
# Uncompressed by default: zstd:3 (ArrayRecord's default) saves ~20% of disk on radiographs but
# its decompression halves host read throughput at 320 px (docs/benchmarks.md).
COMPRESSION = ("uncompressed", "zstd:1", "zstd:3", "brotli:6")


def encode_record(header: dict, pixels: np.ndarray) -> bytes:
    meta = json.dumps(header, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<I", len(meta)) + meta + pixels.tobytes()


def decode_pixels(record: bytes, resolution: int) -> np.ndarray:
    """``[R, R]`` uint8 view of a record's pixels (no header parsing)."""
    (length,) = struct.unpack_from("<I", record, 4)
    return np.frombuffer(record, np.uint8, resolution * resolution, 8 + length).reshape(
        resolution, resolution
    )


def decode_header(record: bytes) -> dict:
    if record[:4] != MAGIC:
        raise DataError(f"not a jcxr record (starts with {record[:4]!r}, expected {MAGIC!r})")
    (length,) = struct.unpack_from("<I", record, 4)
    return json.loads(record[8 : 8 + length])


def resize(grey: np.ndarray, resolution: int, method: str) -> np.ndarray:
    if grey.shape == (resolution, resolution):
        return grey
    return np.asarray(Image.fromarray(grey).resize((resolution, resolution), RESIZE[method]))


def _shard_name(i: int, n: int) -> str:
    return f"{i:05d}-of-{n:05d}.array_record"


def _decode_shard(job):
    """Worker: decode, crop, square and resize one shard's images; returns per row its pixels
    and header additions (the crop), or a bad-file note."""
    root, rows, paths, ids, resolutions, method, square, skip_bad, masker, margin = job
    out = []
    for row, rel, image_id in zip(rows, paths, ids, strict=True):
        try:
            grey, extra = _cropped(Path(root) / rel, image_id, masker, margin)
        except DataError as error:
            if not skip_bad:
                raise
            out.append((row, None, str(error), {}))
            continue
        extra["side"] = int(min(grey.shape) if square == "crop" else max(grey.shape))
        grey = images.to_square(grey, square)
        out.append((row, {r: resize(grey, r, method) for r in resolutions}, None, extra))
    return out


def _cropped(path: Path, image_id: str, masker, margin: float) -> tuple[np.ndarray, dict]:
    """The decoded image, cut to its lung box when there is a masker (:mod:`jcxr.data.crop`),
    and what its record header adds: the box and source size, the pixel spacing in mm."""
    grey, spacing = images.decode_with_spacing(path)
    extra = {} if spacing is None else {"pixel_spacing": spacing}
    if masker is None:
        return grey, extra
    where = f"{path} ({image_id})"
    x0, y0, x1, y1 = crop.lung_box(masker(image_id, grey), grey.shape, margin, where)
    size = [grey.shape[1], grey.shape[0]]
    return grey[y0:y1, x0:x1], {**extra, "crop": [x0, y0, x1, y1], "size": size}


def _write_shard(path: Path, records: list[bytes], compression: str) -> None:
    from array_record.python.array_record_module import ArrayRecordWriter

    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    writer = ArrayRecordWriter(str(tmp), f"group_size:1,{compression}")
    for record in records:
        writer.write(record)
    writer.close()
    os.replace(tmp, path)


def prepare(
    table: Table,
    root: str | Path,
    out: str | Path,
    resolutions: list[int],
    *,
    method: str = "bilinear",
    square: str = "crop",
    workers: int = 2,
    skip_bad: bool = False,
    records_per_shard: int = RECORDS_PER_SHARD,
    compression: str = "uncompressed",
    progress: bool = True,
    provenance: dict | None = None,
    rebuild: bool = False,
    crop_to_lungs: crop.Masker | str | Path | None = None,
    crop_margin: float = crop.MARGIN,
    log=print,
) -> dict:
    """Write every image of ``table`` at every resolution; returns the manifest.

    ``crop_to_lungs``: a mask folder or a ``masker(image_id, grey)`` callable (picklable when
    ``workers > 1``); each image is cut to its lung box (widened by ``crop_margin``) before it
    is squared and resized (:mod:`jcxr.data.crop`), and the box goes into its record.

    ``provenance`` is copied into the manifest (e.g. which phantoms the images are).

    Resumable: shards already written (complete files, renamed into place) are not redone, and
    resolutions can be added to existing shards. Shards remember what made them (the manifest's
    ``inputs``: source CSV hash, root, resize, square, compression, records per shard):
    preparing into a folder made from other inputs is an error naming what changed, or with
    ``rebuild`` removes the old shards first. An image skipped before that decodes now has its
    shards remade. With ``skip_bad`` an unreadable image is left out and listed in the
    manifest; otherwise it stops the run with an error naming the file.
    """
    if method not in RESIZE:
        raise DataError(f"resize method must be one of {list(RESIZE)}; got {method!r}")
    if square not in SQUARE:
        raise DataError(f"square must be one of {SQUARE}; got {square!r}")
    if compression not in COMPRESSION:
        raise DataError(f"compression must be one of {COMPRESSION}; got {compression!r}")
    if not resolutions or any(r < 8 for r in resolutions):
        raise DataError(f"resolutions must be a list of sizes >= 8 px; got {resolutions}")
    if not len(table):
        raise DataError(f"{table.source}: the metadata lists no images; nothing to prepare")
    root, out = Path(root), Path(out)
    masker = (
        crop.MaskFolder(crop_to_lungs) if isinstance(crop_to_lungs, str | Path) else crop_to_lungs
    )
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; choose another --out")
    inputs = {
        "source": table.source,
        "source_csv_sha256": table.csv_sha256,
        "root": str(root.resolve()),
        "resize": method,
        "square": square,
        "compression": compression,
        "records_per_shard": records_per_shard,
    }
    if masker is not None:
        inputs["crop"] = crop.describe(masker, crop_margin)
    _check_inputs(out, inputs, rebuild, log)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / INPUTS, json.dumps(inputs, indent=2))  # before the first shard
    resolutions = sorted(set(resolutions))
    n_shards = max(1, -(-len(table) // records_per_shard))
    plan = [
        np.arange(i * records_per_shard, min((i + 1) * records_per_shard, len(table)))
        for i in range(n_shards)
    ]
    for r in resolutions:
        (out / f"res{r}").mkdir(parents=True, exist_ok=True)
        for leftover in (out / f"res{r}").glob(".*.partial-*"):  # from a killed run
            leftover.unlink()
    skipped_path = out / SKIPPED
    skipped = json.loads(skipped_path.read_text()) if skipped_path.is_file() else {}
    skipped = _retry_skipped(table, root, out, (masker, crop_margin), skipped, records_per_shard,
                             n_shards, log)  # fmt: skip
    atomic_write_text(skipped_path, json.dumps(skipped))
    todo = [
        i
        for i in range(n_shards)
        if not all((out / f"res{r}" / _shard_name(i, n_shards)).is_file() for r in resolutions)
    ]
    jobs = [
        (
            str(root),
            plan[i].tolist(),
            table.paths[plan[i]].tolist(),
            table.image_ids[plan[i]].tolist(),
            resolutions,
            method,
            square,
            skip_bad,
            masker,
            crop_margin,
        )
        for i in todo
    ]
    bar = _progress(len(table), progress, initial=len(table) - sum(len(plan[i]) for i in todo))
    with workers_pool(workers) as pool:
        results = pool.map(_decode_shard, jobs) if workers > 1 else map(_decode_shard, jobs)
        for i, decoded in zip(todo, results, strict=True):
            bad = {str(row): note for row, _, note, _ in decoded if note}
            skipped.update(bad)
            atomic_write_text(skipped_path, json.dumps(skipped))
            _write_geometry(out, i, n_shards, decoded)
            for r in resolutions:
                records = [
                    encode_record({**_header(table, row), **extra}, pixels[r])
                    for row, pixels, _, extra in decoded
                    if pixels is not None
                ]
                target = out / f"res{r}" / _shard_name(i, n_shards)
                if not target.is_file():
                    _write_shard(target, records, compression)
            bar.update(len(decoded))
    bar.close()
    bad_rows = {int(k) for k in skipped}
    kept = np.array([i for i in range(len(table)) if i not in bad_rows], dtype=np.int64)
    manifest = _manifest(table, out, resolutions, n_shards, kept, method, square, skipped)
    manifest["compression"] = compression
    manifest["inputs"] = inputs
    manifest.update(provenance or {})
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))
    return manifest


def _recorded_inputs(out: Path) -> dict | None:
    """What made the shards at ``out``: the manifest's ``inputs`` (older manifests: the fields
    they recorded), or those of a ``prepare`` killed before its manifest; None if empty."""
    if (out / MANIFEST).is_file():
        manifest = read_manifest(out)
        if "inputs" in manifest:
            return manifest["inputs"]
        keys = ("source", "source_csv_sha256", "resize", "square", "compression")
        return {k: manifest[k] for k in keys if k in manifest}
    if (out / INPUTS).is_file():
        return _read_json(out / INPUTS, "the inputs of a prepare that did not finish")
    return None


def _check_inputs(out: Path, inputs: dict, rebuild: bool, log) -> None:
    recorded = _recorded_inputs(out) if out.is_dir() else None
    if recorded is None:
        return
    changed = {k: (recorded[k], v) for k, v in inputs.items() if k in recorded and recorded[k] != v}
    if not changed:
        return
    what = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
    if not rebuild:
        raise DataError(
            f"{out} holds shards made from other inputs ({what}); rerun with --rebuild to "
            "remove and remake them, or choose another --out"
        )
    log(f"{out}: shards made from other inputs ({what}); removing them to rebuild")
    remove_shards(out)


def remove_shards(out: Path) -> None:
    """Remove every shard, index and record of ``prepare`` at ``out`` (nothing else there)."""
    for path in sorted(out.glob("res*")):
        if path.is_dir():
            shutil.rmtree(path)
    shutil.rmtree(out / GEOMETRY, ignore_errors=True)
    for name in (MANIFEST, SKIPPED, INPUTS):
        (out / name).unlink(missing_ok=True)


def _retry_skipped(table, root, out, cropping, skipped: dict, per_shard, n_shards, log) -> dict:
    """Images skipped before that decode now: their shards are removed (to be remade) and
    they leave the skip list."""
    fixed = []
    for key in sorted(skipped, key=int):
        row = int(key)
        try:
            _cropped(Path(root) / table.paths[row], str(table.image_ids[row]), *cropping)
        except DataError:
            continue
        fixed.append(row)
    for row in fixed:
        log(f"{table.paths[row]}: skipped before, decodes now; its shard is remade")
        del skipped[str(row)]
        for directory in out.glob("res*"):
            (directory / _shard_name(row // per_shard, n_shards)).unlink(missing_ok=True)
    return skipped


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(
            f"{path}: {what} is not valid JSON ({error}); it was cut short or edited. Remove "
            "the folder's shards and prepare them again"
        ) from None


def _header(table: Table, row: int) -> dict:
    return {
        "image_id": str(table.image_ids[row]),
        "patient_id": str(table.patient_ids[row]),
        "view": str(table.views[row]),
        "labels": [None if np.isnan(v) else float(v) for v in table.labels[row]],
    }


GEOMETRY = "geometry"  # per shard: each record's pixel spacing and square side, in source pixels


def _write_geometry(out: Path, shard: int, n_shards: int, decoded) -> None:
    """``geometry/SHARD.json``: ``{row: [mm per source pixel or None, square side]}``, what
    the index's ``pixel_spacing`` and ``mm_per_pixel`` are made of (kept across resumes)."""
    facts = {str(row): [extra.get("pixel_spacing"), extra["side"]]
             for row, pixels, _, extra in decoded if pixels is not None}  # fmt: skip
    (out / GEOMETRY).mkdir(exist_ok=True)
    name = _shard_name(shard, n_shards).replace(".array_record", ".json")
    atomic_write_text(out / GEOMETRY / name, json.dumps(facts))


def _geometry(out: Path, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mm per source pixel, square side in source pixels) of the ``kept`` rows; NaN where the
    file gave no spacing (or shards written before jcxr recorded it)."""
    facts = {}
    for path in sorted((out / GEOMETRY).glob("*.json")):
        facts.update(json.loads(path.read_text()))
    rows = [facts.get(str(row), [None, None]) for row in kept]
    spacing = np.array([np.nan if s is None else s for s, _ in rows], np.float64)
    side = np.array([np.nan if n is None else n for _, n in rows], np.float64)
    return spacing, side


def _manifest(table, out, resolutions, n_shards, kept, method, square, skipped) -> dict:
    sub = table.subset(kept)
    spacing, side = _geometry(out, kept)
    shards = {}
    for r in resolutions:
        optional = {
            name: values
            for name, values in (
                ("study_id", sub.study_ids),
                ("official_split", sub.official_split),
            )
            if values is not None
        }
        np.savez(
            index_path(out, r),
            image_id=sub.image_ids,
            patient_id=sub.patient_ids,
            labels=sub.labels,
            view=sub.views,
            pixel_spacing=spacing,  # mm per pixel of the source image (NaN: not recorded)
            mm_per_pixel=spacing * side / r,  # mm per pixel of this resolution's image
            **optional,
        )
        shards[str(r)] = [
            {
                "file": f"res{r}/{_shard_name(i, n_shards)}",
                "sha256": file_sha256(out / f"res{r}" / _shard_name(i, n_shards)),
            }
            for i in range(n_shards)
        ]
    return {
        "format": "jcxr-shards/1",
        "source": table.source,
        "source_csv_sha256": table.csv_sha256,
        "label_names": list(table.label_names),
        "resolutions": resolutions,
        "images": len(sub),
        "patients": int(sub.num_patients),
        "resize": method,
        "square": square,
        "shards": shards,
        "skipped": [
            {"image": str(table.image_ids[int(k)]), "reason": v} for k, v in sorted(skipped.items())
        ],
    }


def read_manifest(shards: str | Path) -> dict:
    path = Path(shards) / MANIFEST
    if not path.is_file():
        raise DataError(
            f"{Path(shards)}: no {MANIFEST}; prepare the shards first with `python -m jcxr.data "
            f"prepare --source SOURCE --root DIR --resolutions ... --out {shards}`"
        )
    return _read_json(path, "the shard manifest")


def index_path(shards: str | Path, resolution: int) -> Path:
    """Where the record index of the ``resolution`` px shards is: the one place that knows."""
    return Path(shards) / f"res{resolution}" / "index.npz"


def read_index(shards: str | Path, resolution: int) -> Table:
    """The records of the ``resolution`` px shards as a :class:`Table`, in record order
    (``image_ids`` double as ``paths``: a record has no file of its own)."""
    manifest = read_manifest(shards)
    path = index_path(shards, resolution)
    if not path.is_file():
        raise DataError(
            f"{path}: no record index; prepared resolutions are {manifest['resolutions']}"
        )
    with np.load(path) as index:
        return Table(
            source=manifest["source"],
            image_ids=index["image_id"],
            patient_ids=index["patient_id"],
            label_names=tuple(manifest["label_names"]),
            labels=index["labels"],
            views=index["view"],
            paths=index["image_id"],
            csv_sha256=manifest.get("source_csv_sha256", ""),
            study_ids=index["study_id"] if "study_id" in index else None,
            official_split=index["official_split"] if "official_split" in index else None,
            mm_per_pixel=index["mm_per_pixel"] if "mm_per_pixel" in index else None,
        )


def shard_paths(shards: str | Path, resolution: int) -> list[str]:
    manifest = read_manifest(shards)
    if str(resolution) not in manifest["shards"]:
        raise DataError(
            f"{shards}: no shards at {resolution} px; prepared resolutions are "
            f"{manifest['resolutions']}"
        )
    return [str(Path(shards) / s["file"]) for s in manifest["shards"][str(resolution)]]


def read_pixels(shards: str | Path, resolution: int, records) -> np.ndarray:
    """``[n, R, R]`` uint8 pixels of ``records`` (indices into the shard index) at
    ``resolution``: a few images for a figure, not a training pipeline."""
    import grain

    source = grain.sources.ArrayRecordDataSource(shard_paths(shards, resolution))
    return np.stack([decode_pixels(source[int(r)], resolution).copy() for r in records])


def read_headers(shards: str | Path, resolution: int, records) -> list[dict]:
    """The headers of ``records`` (image id, labels, and a lung crop's box where there is one)."""
    import grain

    source = grain.sources.ArrayRecordDataSource(shard_paths(shards, resolution))
    return [decode_header(source[int(r)]) for r in records]


def verify(shards: str | Path) -> list[str]:
    """Re-read every shard: checksums, record counts and headers against the index.

    Returns a list of problems (empty when everything checks out).
    """
    from array_record.python.array_record_module import ArrayRecordReader

    shards = Path(shards)
    manifest = read_manifest(shards)
    cropped = bool(manifest.get("inputs", {}).get("crop"))
    problems = []
    for r in manifest["resolutions"]:
        image_ids = read_index(shards, r).image_ids
        count = 0
        for entry in manifest["shards"][str(r)]:
            path = shards / entry["file"]
            if not path.is_file():
                problems.append(f"{entry['file']}: missing")
                continue
            if file_sha256(path) != entry["sha256"]:
                problems.append(f"{entry['file']}: checksum differs from the manifest")
                continue
            reader = ArrayRecordReader(str(path))
            for record in reader.read_all():
                header = decode_header(record)
                if count >= len(image_ids) or header["image_id"] != image_ids[count]:
                    problems.append(
                        f"{entry['file']}: record {count} is {header['image_id']}, "
                        "out of order with the index"
                    )
                if len(record) - 8 - struct.unpack_from("<I", record, 4)[0] != r * r:
                    problems.append(f"{entry['file']}: record {count} has a wrong pixel count")
                if cropped:
                    problem = crop.check_box(header.get("crop"), header.get("size"))
                    if problem:
                        problems.append(f"{entry['file']}: record {count}: {problem}")
                count += 1
            reader.close()
        if count != manifest["images"]:
            problems.append(f"res{r}: {count} records, manifest says {manifest['images']}")
    return problems


def _progress(total: int, enabled: bool, initial: int = 0):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="img", desc="prepare", disable=not enabled)
