"""OpenI: the Indiana University chest X-ray collection (Demner-Fushman et al. 2016), 3,955
reports and 7,470 images, the external test set of Cardona Cardenas et al. 2020.

At ``root``:

* ``NLMCXR_reports.tgz`` (or its ``ecgen-radiology/`` folder): one XML per report, with MeSH
  terms (``<major>``: the indexer's; ``<automatic>``: MTI's) such as ``Cardiomegaly/mild`` or
  ``normal``, and a ``<parentImage id=...>`` per image of the exam;
* the view of each image: ``nlmcxr_dicom_metadata.csv`` (or ``.gz``; the DICOM headers'
  ``View Position``, the default) or ``nlmcxr_tsne_pa.csv`` (``imageid``, ``tsne-view``: PA or
  L, from clustering the images, ``views_from="tsne"``);
* images: ``NLMCXR_png/ID.png``.

A finding is a MeSH term's head (the text before the first ``/``: ``Cardiomegaly/mild`` ->
``Cardiomegaly``), named as NIH ChestX-ray14 names it where both have it (``normal`` ->
``No Finding``, ``Pulmonary Atelectasis`` -> ``Atelectasis``, ...). Every image takes its
report's findings; the report is the patient and the study (the collection has no patient ids).
An image no view table lists has view ``UNK``.
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from jcxr._io import file_sha256, read_csv
from jcxr.data.table import DataError, Table, finding_labels, reader_options

REPORTS = "NLMCXR_reports.tgz"
REPORT_FOLDER = "ecgen-radiology"
VIEW_TABLES = {"dicom": ("nlmcxr_dicom_metadata.csv", "imageid", "View Position"),
               "tsne": ("nlmcxr_tsne_pa.csv", "imageid", "tsne-view")}  # fmt: skip
# MeSH head (lower case) -> NIH ChestX-ray14's name, for the findings both have
HARMONISED = {
    "normal": "No Finding",
    "cardiomegaly": "Cardiomegaly",
    "pleural effusion": "Effusion",
    "pulmonary atelectasis": "Atelectasis",
    "atelectasis": "Atelectasis",
    "infiltrate": "Infiltration",
    "mass": "Mass",
    "nodule": "Nodule",
    "pneumonia": "Pneumonia",
    "pneumothorax": "Pneumothorax",
    "consolidation": "Consolidation",
    "pulmonary edema": "Edema",
    "pulmonary emphysema": "Emphysema",
    "emphysema": "Emphysema",
    "pulmonary fibrosis": "Fibrosis",
    "hernia, hiatal": "Hernia",
}
PRESETS = {
    # Cardona Cardenas et al. 2020's external set: every PA image, cardiomegaly vs normal
    "cardenas2020": {"views": ("PA",), "labels": ("Cardiomegaly",), "negatives": "normal"},
}
DEFAULTS = {"views": None, "labels": None, "negatives": "absent", "terms": ("major",),
            "views_from": "dicom"}  # fmt: skip


def read_metadata(
    root: str | Path,
    *,
    preset: str | None = None,
    views: Iterable[str] | None = None,
    labels: Iterable[str] | None = None,
    negatives: str | None = None,
    terms: Iterable[str] | None = None,
    views_from: str | None = None,
) -> Table:
    """One row per image of a report, in report-number order; images need not be present.

    Args (unset: the preset's value, else :data:`DEFAULTS`):
      preset: a name of :data:`PRESETS`.
      views: keep images with these views (e.g. ``("PA",)``; default all).
      labels: the findings to tabulate; default every one the reports name.
      negatives: ``"absent"`` (an image without the finding is 0) or ``"normal"`` (only images
        of normal reports are 0; the rest are excluded).
      terms: the MeSH lists read, ``("major",)`` or ``("major", "automatic")``.
      views_from: ``"dicom"`` or ``"tsne"`` (:data:`VIEW_TABLES`).
    """
    given = dict(views=views, labels=labels, negatives=negatives, terms=terms,
                 views_from=views_from)  # fmt: skip
    o = reader_options("OpenI", DEFAULTS, PRESETS, preset, given)
    if o["views_from"] not in VIEW_TABLES:
        raise DataError(f"views_from must be one of {list(VIEW_TABLES)}; got {o['views_from']!r}")
    if not set(o["terms"]) <= {"major", "automatic"} or not o["terms"]:
        raise DataError(f"terms must name 'major' and/or 'automatic'; got {o['terms']!r}")
    root = Path(root)
    view_of, view_path = _views(root, o["views_from"])
    rows = []  # (report, image, view, findings)
    for report, findings, images in sorted(_reports(root, tuple(o["terms"])), key=_number):
        for image in images:
            view = view_of.get(image, "UNK")
            if o["views"] is None or view in o["views"]:
                rows.append((report, image, view, findings))
    present = sorted({f for *_, found in rows for f in found})
    names = list(o["labels"]) if o["labels"] is not None else present
    values = finding_labels([r[3] for r in rows], names, o["negatives"])
    reports = np.array([r[0] for r in rows])
    return Table(
        source="openi",
        image_ids=np.array([r[1] for r in rows]),
        patient_ids=reports,
        label_names=tuple(names),
        labels=values,
        views=np.array([r[2] for r in rows]),
        paths=np.array([f"NLMCXR_png/{r[1]}.png" for r in rows]),
        csv_sha256=file_sha256(view_path),
        study_ids=reports,
    )


def finding(term: str) -> str:
    """A MeSH term's finding: its head, harmonised (``Cardiomegaly/mild`` -> ``Cardiomegaly``)."""
    head = term.split("/", 1)[0].strip()
    return HARMONISED.get(head.lower(), head)


def _number(report: tuple) -> int:
    return int(report[0].removeprefix("CXR"))


def _reports(root: Path, terms: tuple[str, ...]) -> Iterator[tuple[str, frozenset, list[str]]]:
    """(report id ``CXRn``, its findings, its image ids) of every report XML."""
    for name, data in _report_files(root):
        try:
            element = ElementTree.fromstring(data)
        except ElementTree.ParseError as error:
            raise DataError(f"{name}: not a report XML ({error})") from None
        uid = element.find("uId")
        if uid is None or not uid.get("id", "").startswith("CXR"):
            raise DataError(f'{name}: no <uId id="CXRn">; expected OpenI\'s report id')
        found = frozenset(finding(t.text) for kind in terms for t in element.iter(kind)
                          if t.text and t.text.strip())  # fmt: skip
        images = [p.get("id") for p in element.iter("parentImage") if p.get("id")]
        yield uid.get("id"), found, images


def _report_files(root: Path) -> Iterator[tuple[str, bytes]]:
    folder = root / REPORT_FOLDER
    if folder.is_dir():
        for path in sorted(folder.glob("*.xml")):
            yield str(path), path.read_bytes()
        return
    archive = root / REPORTS
    if not archive.is_file():
        raise DataError(f"{root}: no OpenI reports; expected {REPORTS} or {REPORT_FOLDER}/")
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".xml"):
                    yield f"{archive}:{member.name}", tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{archive}: cannot read the archive ({error})") from None


def _views(root: Path, source: str) -> tuple[dict[str, str], Path]:
    name, id_column, view_column = VIEW_TABLES[source]
    path = next((p for p in (root / name, root / f"{name}.gz") if p.is_file()), None)
    if path is None:
        raise DataError(f"{root}: no {name} (or .gz); expected OpenI's view table")
    try:
        header, body = read_csv(path)
    except ValueError as error:
        raise DataError(str(error)) from None
    missing = [c for c in (id_column, view_column) if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {header[:8]} ...")
    i, j = header.index(id_column), header.index(view_column)
    return {row[i].strip(): row[j].strip() or "UNK" for _, row in body if len(row) > j}, path
