"""CheXpert (Irvin et al. 2019): train.csv / valid.csv, uncertainty policies, study grouping.

Label values in the CSV: 1 (positive), 0 (negative), -1 (uncertain), blank (not mentioned).
An uncertainty policy maps -1 per label to 1 (``"ones"``), 0 (``"zeros"``) or excluded
(``"ignore"``); a blank is excluded by default (``blank="negative"`` counts it as 0).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from jcxr._io import file_sha256, read_csv
from jcxr.data.table import DataError, Table

LABELS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
POLICIES = ("ones", "zeros", "ignore")
PRESETS = {
    # Chizari 2021, after Irvin et al.'s best policy per task.
    "chizari2021": {
        "Atelectasis": "ones",
        "Cardiomegaly": "zeros",
        "Consolidation": "ignore",
        "Edema": "ones",
        "Pleural Effusion": "ones",
    },
}
REQUIRED = ("Path", "Frontal/Lateral", "AP/PA")
_PATH = re.compile(r"^(?:CheXpert-v1\.0(?:-small)?/)?(train|valid)/(patient\d+)/(study\d+)/(.+)$")


def read_metadata(
    root: str | Path,
    split: str = "train",
    *,
    policy: str | dict[str, str] = "chizari2021",
    blank: str = "exclude",
    frontal_only: bool = False,
    views: tuple[str, ...] | None = None,
) -> Table:
    """One row per image of ``root/{split}.csv``; labels 1 / 0 / NaN after the policy.

    ``policy``: a preset name (``"chizari2021"``), one policy for every label, or a mapping
    label -> policy (labels not named keep their -1 as excluded). ``views`` filters AP/PA
    (e.g. ``("PA",)``); ``frontal_only`` drops lateral images.
    """
    root = Path(root)
    path = root / f"{split}.csv"
    if not path.is_file():
        raise DataError(f"{root}: no {split}.csv; expected CheXpert's train.csv and valid.csv")
    policies = _policies(policy)
    if blank not in ("exclude", "negative"):
        raise DataError(f"blank must be 'exclude' or 'negative'; got {blank!r}")
    try:
        header, body = read_csv(path)
    except ValueError as error:
        raise DataError(str(error)) from None
    missing = [c for c in (*REQUIRED, *policies) if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {header}")
    if not body:
        raise DataError(f"{path}: a header and no data rows; expected one row per image")
    label_names = tuple(name for name in LABELS if name in header)
    rows = []
    for line, fields in body:
        if len(fields) != len(header):
            raise DataError(
                f"{path}: line {line}: {len(fields)} fields, expected {len(header)} (the header's)"
            )
        rows.append((line, dict(zip(header, fields, strict=True))))
    images, patients, studies, view_list, labels = [], [], [], [], []
    for line, row in rows:
        match = _PATH.match(row["Path"].strip())
        if not match:
            raise DataError(
                f"{path}: line {line}: Path {row['Path']!r} is not "
                "[CheXpert-v1.0[-small]/]{train,valid}/patientN/studyN/FILE"
            )
        frontal = row["Frontal/Lateral"].strip()
        view = row["AP/PA"].strip() if frontal == "Frontal" else "LL"
        if frontal_only and frontal != "Frontal":
            continue
        if views is not None and view not in views:
            continue
        values = []
        for name in label_names:
            values.append(_map(row[name], policies.get(name, "ignore"), blank, path, line, name))
        images.append(row["Path"].strip())
        patients.append(match.group(2))
        studies.append(f"{match.group(2)}/{match.group(3)}")
        view_list.append(view)
        labels.append(values)
    image_ids = np.array(images)
    return Table(
        source="chexpert",
        image_ids=image_ids,
        patient_ids=np.array(patients),
        label_names=label_names,
        labels=np.array(labels, np.float32).reshape(len(images), len(label_names)),
        views=np.array(view_list),
        paths=np.array([_relative(root, p) for p in images]),
        csv_sha256=file_sha256(path),
        study_ids=np.array(studies),
    )


def read_dataset(root: str | Path, **options) -> Table:
    """``train.csv`` and, when present, ``valid.csv`` as one table (same ``options`` as
    :func:`read_metadata`), with ``official_split`` "train" / "test": CheXpert's official test
    set is hidden, so its validation set (200 studies, radiologist-labelled) serves as the
    independent test set, as in Chizari 2021.
    """
    root = Path(root)
    parts = [read_metadata(root, "train", **options)]
    if (root / "valid.csv").is_file():
        parts.append(read_metadata(root, "valid", **options))
    first = parts[0]
    if any(p.label_names != first.label_names for p in parts):
        raise DataError(
            f"{root}: train.csv and valid.csv have different label columns "
            f"({[p.label_names for p in parts]})"
        )
    joined = {
        field: np.concatenate([getattr(p, field) for p in parts])
        for field in ("image_ids", "patient_ids", "labels", "views", "paths", "study_ids")
    }
    names = ("train", "test")[: len(parts)]
    marks = np.concatenate([np.full(len(p), n) for p, n in zip(parts, names, strict=True)])
    return dataclasses.replace(
        first,
        **joined,
        csv_sha256=",".join(p.csv_sha256 for p in parts),
        official_split=marks if len(parts) == 2 else None,
    )


def study_labels(table: Table) -> tuple[np.ndarray, np.ndarray]:
    """(study IDs, ``[S, L]`` labels): a study is positive if any view is (the max), and
    excluded (NaN) for a label only when every view is."""
    studies, inverse = np.unique(table.study_ids, return_inverse=True)
    out = np.full((studies.size, len(table.label_names)), -np.inf, np.float32)
    values = np.where(np.isnan(table.labels), -np.inf, table.labels)
    np.maximum.at(out, inverse, values)
    return studies, np.where(np.isneginf(out), np.nan, out)


def study_scores(study_ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image scores -> per-study scores, the max over a study's views (Chizari 2021)."""
    studies, inverse = np.unique(study_ids, return_inverse=True)
    out = np.full(studies.size, -np.inf)
    np.maximum.at(out, inverse, scores)
    return studies, out


def _policies(policy) -> dict[str, str]:
    if isinstance(policy, str) and policy in PRESETS:
        return PRESETS[policy]
    if isinstance(policy, str):
        if policy not in POLICIES:
            raise DataError(f"policy must be a preset {list(PRESETS)} or one of {POLICIES}")
        return dict.fromkeys(LABELS, policy)
    bad = {k: v for k, v in policy.items() if v not in POLICIES}
    if bad:
        raise DataError(f"unknown uncertainty policy {bad}; expected one of {POLICIES}")
    return dict(policy)


def _map(text: str, policy: str, blank: str, path, line, name) -> float:
    text = (text or "").strip()
    if text == "":
        return 0.0 if blank == "negative" else np.nan
    try:
        value = float(text)
    except ValueError:
        value = None
    if value == 1.0 or value == 0.0:
        return value
    if value == -1.0:
        return {"ones": 1.0, "zeros": 0.0, "ignore": np.nan}[policy]
    raise DataError(
        f"{path}: line {line}, column {name!r}: found {text!r}, expected 1, 0, -1 or blank"
    )


def _relative(root: Path, csv_path: str) -> str:
    """CSV paths start with the release folder name; images live under root's parent."""
    first = csv_path.split("/", 1)[0]
    return (
        f"../{csv_path}" if first.startswith("CheXpert-v1.0") and root.name == first else csv_path
    )
