"""A second hospital of phantoms, in OpenI's layout: the external set of a demo or test.

The same anatomy and findings as :mod:`jcxr.data.phantom` (drawn from another seed), seen by
another scanner (:data:`LOOK`): a wider field of view (the chest smaller in the frame, a black
border around it), a harder contrast curve (gamma) and more quantum noise. Written as OpenI
ships it, so that :mod:`jcxr.data.openi` reads it unchanged: ``NLMCXR_png/ID.png``,
``NLMCXR_reports.tgz`` (one XML report per image, its findings as MeSH major terms, ``normal``
when there are none) and ``nlmcxr_dicom_metadata.csv`` (every image PA).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from jcxr._io import atomic_write_bytes, atomic_write_text
from jcxr.data import phantom
from jcxr.data.openi import REPORTS, VIEW_TABLES
from jcxr.data.table import DataError
from jcxr.data.workers import pool as workers_pool

LOOK = {"field_of_view": 1.25, "gamma": 1.6, "noise": 0.05}
MESH = {"Nodule": "Nodule", "Mass": "Mass", "Cardiomegaly": "Cardiomegaly",
        "Effusion": "Pleural Effusion"}  # fmt: skip
STAMP = ".phantom_hospital.json"


def generate(root: str | Path, num_images: int, *, seed: int = 1, workers: int = 2) -> Path:
    """Write ``num_images`` phantoms of the second hospital under ``root``; returns ``root``.
    Reuses a complete set made with the same arguments (its stamp is written last)."""
    if num_images < 1:
        raise DataError(f"num_images = {num_images}; expected at least 1 phantom")
    root = Path(root)
    signature = json.dumps({"phantoms": phantom.signature(num_images, seed), "look": LOOK},
                           sort_keys=True)  # fmt: skip
    stamp = root / STAMP
    if stamp.is_file() and stamp.read_text() == signature:
        return root
    images = phantom._patients(num_images, seed)
    (root / "NLMCXR_png").mkdir(parents=True, exist_ok=True)
    ids = [f"CXR{i + 1}_IM-{i + 1:04d}-1001" for i in range(len(images))]
    jobs = [(root / "NLMCXR_png" / f"{image_id}.png", im["findings"], im["patient_seed"],
             im["image_seed"]) for image_id, im in zip(ids, images, strict=True)]  # fmt: skip
    if workers > 1:
        with workers_pool(workers) as pool:
            list(pool.map(_write_one, jobs, chunksize=16))
    else:
        for job in jobs:
            _write_one(job)
    _write_reports(root, ids, images)
    name, id_column, view_column = VIEW_TABLES["dicom"]
    rows = [f"{id_column},{view_column}"] + [f"{image_id},PA" for image_id in ids]
    atomic_write_text(root / name, "\n".join(rows) + "\n")
    atomic_write_text(stamp, signature)
    return root


def scanner_look(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The second scanner's picture of a phantom: smaller in the frame, harder, noisier."""
    size = grey.shape[0]
    inner = round(size / LOOK["field_of_view"])
    small = np.asarray(Image.fromarray(grey).resize((inner, inner), Image.BILINEAR), np.float64)
    frame = np.zeros((size, size))
    offset = (size - inner) // 2
    frame[offset : offset + inner, offset : offset + inner] = small / 255.0
    frame = frame ** LOOK["gamma"] + rng.normal(0.0, LOOK["noise"], frame.shape)
    return np.rint(np.clip(frame, 0, 1) * 255).astype(np.uint8)


def _write_one(job) -> None:
    path, findings, patient_seed, image_seed = job
    grey = scanner_look(phantom.render(findings, patient_seed, image_seed),
                        np.random.default_rng([image_seed, 7]))  # fmt: skip
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def _write_reports(root: Path, ids: list[str], images: list[dict]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for number, (image_id, im) in enumerate(zip(ids, images, strict=True), start=1):
            terms = [MESH[name] for name in phantom.FINDINGS if im["findings"][name]] or ["normal"]
            major = "".join(f"<major>{term}</major>" for term in terms)
            xml = (f'<?xml version="1.0" encoding="utf-8"?><eCitation><uId id="CXR{number}"/>'
                   f'<MeSH>{major}</MeSH><parentImage id="{image_id}"/></eCitation>')  # fmt: skip
            xml = xml.encode()
            info = tarfile.TarInfo(f"ecgen-radiology/{number}.xml")
            info.size = len(xml)
            tar.addfile(info, io.BytesIO(xml))
    atomic_write_bytes(root / REPORTS, buffer.getvalue())
