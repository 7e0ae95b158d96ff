"""PadChest (Bustos et al. 2020): 160,861 chest radiographs of 67,625 patients from Hospital San
Juan, Alicante, with report-derived findings.

The metadata file, ``PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv`` (or ``.gz``), has
one row per image: ``ImageID`` (the PNG's name), ``ImageDir`` (its sub-folder, 0-54 in the
release), ``PatientID``, ``StudyID``, ``Projection`` (PA, L, AP, AP_horizontal, COSTAL,
EXCLUDE, UNK), ``MethodLabel`` (``Physician``: a radiologist labelled the report, 27% of images;
``RNN_model``: a network did) and ``Labels``, a Python-style list of findings, e.g.
``['cardiomegaly', 'pacemaker']``. Images are 16-bit PNGs at ``ROOT/ImageDir/ImageID``.

Findings keep PadChest's names except where NIH ChestX-ray14 has the same finding, which takes
NIH's name (:data:`HARMONISED`: ``cardiomegaly`` -> ``Cardiomegaly``, ``normal`` ->
``No Finding``, ``pleural effusion`` -> ``Effusion``, ...), so that one config label means one
finding across sources. A label is 1 where the image's list names it; where it does not, 0, or
with ``negatives="normal"`` 0 only for images labelled normal and excluded (NaN) otherwise, the
"finding vs normal" design of Cardona Cardenas et al. 2020. An image with no ``Labels`` (103
rows, all labelled by the network, written "nan") is excluded from every label; images PadChest
itself marks ``exclude`` are dropped.

Devices and foreign objects (:data:`DEVICES`, overridable): images naming any of them are dropped
with ``exclude_devices=True``. The list is ours: Cardona Cardenas et al. 2020 drop images with
devices without listing which labels they used (docs/studies.md).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from jcxr._io import file_sha256, read_csv
from jcxr.data.table import DataError, Table, finding_labels, reader_options

CSV_NAME = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
REQUIRED = ("ImageID", "ImageDir", "PatientID", "StudyID", "Projection", "MethodLabel", "Labels")
PROJECTIONS = ("PA", "L", "AP", "AP_horizontal", "COSTAL", "EXCLUDE", "UNK")
METHODS = ("Physician", "RNN_model")
# PadChest name -> NIH ChestX-ray14's, for the findings both have
HARMONISED = {
    "normal": "No Finding",
    "atelectasis": "Atelectasis",
    "cardiomegaly": "Cardiomegaly",
    "pleural effusion": "Effusion",
    "infiltrates": "Infiltration",
    "mass": "Mass",
    "nodule": "Nodule",
    "pneumonia": "Pneumonia",
    "pneumothorax": "Pneumothorax",
    "consolidation": "Consolidation",
    "pulmonary edema": "Edema",
    "emphysema": "Emphysema",
    "pulmonary fibrosis": "Fibrosis",
    "pleural thickening": "Pleural_Thickening",
    "hiatal hernia": "Hernia",
}
# Labels naming a device or foreign object in the image: pacemakers and defibrillators ("dai":
# desfibrilador automatico implantable), catheters, tubes and drains, prostheses and artificial
# valves, sutures and metal, foreign bodies.
DEVICES = (
    "pacemaker", "dual chamber device", "single chamber device", "dai", "electrical device",
    "artificial heart valve", "artificial mitral heart valve", "artificial aortic heart valve",
    "catheter", "central venous catheter", "central venous catheter via jugular vein",
    "central venous catheter via subclavian vein", "central venous catheter via umbilical vein",
    "reservoir central venous catheter", "endotracheal tube", "tracheostomy tube", "NSG tube",
    "chest drain tube", "ventriculoperitoneal drain tube", "nephrostomy tube",
    "gastrostomy tube", "double J stent", "prosthesis", "endoprosthesis", "aortic endoprosthesis",
    "mammary prosthesis", "humeral prosthesis", "suture material", "metal",
    "abnormal foreign body", "external foreign body",
)  # fmt: skip
PRESETS = {
    # Cardona Cardenas et al. 2020: PA, physician-labelled, no devices, cardiomegaly vs normal
    "cardenas2020": dict(
        projections=("PA",),
        physician_only=True,
        exclude_devices=True,
        labels=("Cardiomegaly",),
        negatives="normal",
    ),
}


def find_csv(root: Path) -> Path:
    for candidate in (root / CSV_NAME, root / f"{CSV_NAME}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{root}: no PadChest metadata; expected {CSV_NAME} (or .gz) in that folder")


DEFAULTS = dict(labels=None, projections=PROJECTIONS, physician_only=False, exclude_devices=False,
                devices=DEVICES, negatives="absent")  # fmt: skip


def read_metadata(
    root: str | Path,
    *,
    preset: str | None = None,
    labels: Iterable[str] | None = None,
    projections: Iterable[str] | None = None,
    physician_only: bool | None = None,
    exclude_devices: bool | None = None,
    devices: Iterable[str] | None = None,
    negatives: str | None = None,
) -> Table:
    """One row per kept image of PadChest at ``root``; images need not be present.

    Args (unset: the preset's value, else :data:`DEFAULTS`):
      preset: a name of :data:`PRESETS`.
      labels: the findings to tabulate (harmonised names); default every finding in the file.
      projections: keep these ``Projection`` values (default all).
      physician_only: keep only the radiologist-labelled images (``MethodLabel``).
      exclude_devices: drop images whose labels name one of ``devices`` (:data:`DEVICES`).
      negatives: ``"absent"`` (an image without the finding is 0) or ``"normal"`` (only images
        labelled normal are 0; the rest are excluded).
    """
    given = dict(labels=labels, projections=projections, physician_only=physician_only,
                 exclude_devices=exclude_devices, devices=devices, negatives=negatives)  # fmt: skip
    o = reader_options("PadChest", DEFAULTS, PRESETS, preset, given)
    unknown = sorted(set(o["projections"]) - set(PROJECTIONS))
    if unknown:
        raise DataError(f"projections {unknown} are not PadChest's; expected {list(PROJECTIONS)}")
    root = Path(root)
    path = find_csv(root)
    dropped = frozenset({"exclude", *(o["devices"] if o["exclude_devices"] else ())})
    kept = [r for r in _rows(path) if r["Projection"] in o["projections"]
            and (not o["physician_only"] or r["MethodLabel"] == "Physician")
            and not dropped.intersection(r["findings"] or ())]  # fmt: skip
    names = _label_names(kept, o["labels"])
    values = finding_labels([r["findings"] for r in kept], names, o["negatives"])
    return Table(
        source="padchest",
        image_ids=np.array([r["ImageID"] for r in kept]),
        patient_ids=np.array([r["PatientID"] for r in kept]),
        label_names=tuple(names),
        labels=values,
        views=np.array([r["Projection"] for r in kept]),
        paths=np.array([f"{r['ImageDir']}/{r['ImageID']}" for r in kept]),
        csv_sha256=file_sha256(path),
        study_ids=np.array([r["StudyID"] for r in kept]),
    )


def _rows(path: Path) -> list[dict]:
    """The CSV's rows as dicts, with ``findings`` the harmonised label set (None: no labels)."""
    try:
        header, body = read_csv(path)
    except ValueError as error:
        raise DataError(str(error)) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected at least {list(REQUIRED)}")
    if not body:
        raise DataError(f"{path}: a header and no data rows; expected one row per image")
    index = {name: header.index(name) for name in REQUIRED}
    out = []
    for line, fields in body:
        if len(fields) != len(header):
            raise DataError(
                f"{path}: line {line}: {len(fields)} fields, expected {len(header)} (the header's)"
            )
        row = {name: fields[i].strip() for name, i in index.items()}
        if row["Projection"] not in PROJECTIONS:
            found = row["Projection"]
            raise DataError(f"{path}: line {line}, column 'Projection': found {found!r}, "
                            f"expected one of {list(PROJECTIONS)}")  # fmt: skip
        if row["MethodLabel"] not in METHODS:
            raise DataError(f"{path}: line {line}, column 'MethodLabel': found "
                            f"{row['MethodLabel']!r}, expected one of {list(METHODS)}")  # fmt: skip
        if not row["ImageID"] or not row["ImageDir"]:
            raise DataError(f"{path}: line {line}: empty ImageID or ImageDir; expected the "
                            "image's file name and sub-folder")  # fmt: skip
        row["findings"] = _findings(row["Labels"], path, line)
        out.append(row)
    return out


def _findings(text: str, path: Path, line: int) -> frozenset[str] | None:
    if text in ("", "nan"):  # the release writes a missing list as "nan" (103 rows)
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        example = "['cardiomegaly', 'pacemaker']"
        raise DataError(f"{path}: line {line}, column 'Labels': found {text[:80]!r}, expected "
                        f"a list of quoted findings such as {example}")  # fmt: skip
    names = (v.strip() for v in value)
    return frozenset(HARMONISED.get(n, n) for n in names if n)


def _label_names(rows: list[dict], wanted) -> list[str]:
    present = sorted({f for r in rows for f in (r["findings"] or ())} - {"exclude"})
    if wanted is None:
        return present
    wanted = list(wanted)
    unknown = [w for w in wanted if w not in present and w not in HARMONISED.values()]
    if unknown:
        raise DataError(f"PadChest has no finding {unknown}; its findings include "
                        f"{present[:12]} ... ({len(present)} in all)")  # fmt: skip
    return wanted
