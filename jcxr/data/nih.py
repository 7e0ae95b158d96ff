"""NIH ChestX-ray14 (Wang et al. 2017): metadata CSV, image folders, official split lists."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jcxr._io import file_sha256, read_csv
from jcxr.data.table import DataError, Table

FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
CSV_NAMES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
REQUIRED_COLUMNS = ("Image Index", "Finding Labels", "Follow-up #", "Patient ID", "View Position")
OFFICIAL_LISTS = {"train_val": "train_val_list.txt", "test": "test_list.txt"}
BOXES_NAME = "BBox_List_2017.csv"


def find_csv(root: Path) -> Path:
    """The metadata CSV under ``root`` (either release's name, optionally gzipped)."""
    for name in CSV_NAMES:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise DataError(
        f"{root}: no NIH metadata CSV; expected one of {list(CSV_NAMES)} (or .gz) in that folder"
    )


def read_metadata(root: str | Path) -> Table:
    """Read the metadata of an NIH ChestX-ray14 copy at ``root``; images need not be present.

    Both header variants work (the 2017 release's trailing empty column and "058Y" ages, and the
    2020 one). Image paths are resolved from ``images_*/images/`` or one flat ``images/`` folder
    when those exist, else left as ``images/NAME``.
    """
    root = Path(root)
    path = find_csv(root)
    try:
        header, body = read_csv(path)
    except ValueError as error:
        raise DataError(str(error)) from None
    if not body:
        raise DataError(f"{path}: a header and no data rows; expected one row per image")
    columns = {name: i for i, name in enumerate(header)}
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; found {list(columns)}, expected at least "
            f"{list(REQUIRED_COLUMNS)}"
        )
    needed = max(columns[c] for c in REQUIRED_COLUMNS) + 1
    n = len(body)
    labels = np.zeros((n, len(FINDINGS)), np.float32)
    image_ids, patients, views = [], [], []
    finding_index = {name: j for j, name in enumerate(FINDINGS)}
    for i, (line, row) in enumerate(body):
        if len(row) < needed:
            raise DataError(
                f"{path}: line {line}: {len(row)} fields, expected {len(header)} (the header's)"
            )
        image_ids.append(row[columns["Image Index"]].strip())
        patients.append(row[columns["Patient ID"]].strip())
        views.append(row[columns["View Position"]].strip())
        for finding in row[columns["Finding Labels"]].split("|"):
            finding = finding.strip()
            if finding == NO_FINDING:
                continue
            if finding not in finding_index:
                raise DataError(
                    f"{path}: line {line} ({image_ids[-1]}): unknown finding {finding!r}; "
                    f"expected {NO_FINDING!r} or one of {list(FINDINGS)} joined by '|'"
                )
            labels[i, finding_index[finding]] = 1.0
    image_ids = np.array(image_ids)
    if np.unique(image_ids).size != n:
        dupes = sorted({x for x in image_ids.tolist() if (image_ids == x).sum() > 1})[:5]
        raise DataError(f"{path}: duplicate Image Index values, e.g. {dupes}")
    table = Table(
        source="nih",
        image_ids=image_ids,
        patient_ids=np.array(patients),
        label_names=FINDINGS,
        labels=labels,
        views=np.array(views),
        paths=_image_paths(root, image_ids),
        csv_sha256=file_sha256(path),
    )
    official = official_split(root, table)
    if official is None:
        return table
    marks = np.full(n, "", dtype="<U5")
    marks[official["train_val"]] = "train"
    marks[official["test"]] = "test"
    return dataclasses.replace(table, official_split=marks)


def official_split(root: str | Path, table: Table) -> dict[str, np.ndarray] | None:
    """Row indices of the official ``train_val`` and ``test`` lists, or None if absent."""
    root = Path(root)
    if not all((root / name).is_file() for name in OFFICIAL_LISTS.values()):
        return None
    position = {image: i for i, image in enumerate(table.image_ids.tolist())}
    out = {}
    for split, name in OFFICIAL_LISTS.items():
        images = [line.strip() for line in (root / name).read_text().splitlines() if line.strip()]
        unknown = [image for image in images if image not in position]
        if unknown:
            raise DataError(
                f"{root / name}: {len(unknown)} image(s) not in the CSV, e.g. {unknown[:3]}"
            )
        out[split] = np.array([position[image] for image in images], dtype=np.int64)
    return out


def _image_paths(root: Path, image_ids: np.ndarray) -> np.ndarray:
    """``images_001/images/X.png`` (the release's 12 folders) or ``images/X.png``."""
    folders = sorted(root.glob("images_*/images"))
    if not folders:
        return np.array([f"images/{name}" for name in image_ids.tolist()])
    where = {}
    for folder in folders:
        for file in folder.iterdir():
            where[file.name] = file.relative_to(root).as_posix()
    return np.array([where.get(name, f"images/{name}") for name in image_ids.tolist()])


@dataclasses.dataclass(frozen=True)
class Box:
    """A finding's bounding box in the original image's pixels (NIH: 1024 x 1024)."""

    label: str
    x: float
    y: float
    width: float
    height: float


def read_boxes(root: str | Path) -> dict[str, list[Box]]:
    """``{image_id: [Box, ...]}`` from ``BBox_List_2017.csv`` (or ``.gz``) under ``root`` (or
    ``root`` itself, a box file in that layout): the release's 984 boxes of 8 findings, or the
    phantoms' own; ``{}`` when there is none."""
    root = Path(root)
    candidates = (root,) if root.is_file() else (root / BOXES_NAME, root / f"{BOXES_NAME}.gz")
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        return {}
    try:
        header, body = read_csv(path)
    except ValueError as error:
        raise DataError(str(error)) from None
    if header[:2] != ["Image Index", "Finding Label"]:
        raise DataError(
            f"{path}: header {header[:3]}; expected 'Image Index,Finding Label,Bbox [x,y,w,h]'"
        )
    boxes: dict[str, list[Box]] = {}
    for line, row in body:
        try:
            x, y, w, h = (float(v) for v in row[2:6])
        except (ValueError, IndexError):
            raise DataError(
                f"{path}: line {line}: expected image, finding and four numbers x, y, w, h; "
                f"found {row[:6]}"
            ) from None
        boxes.setdefault(row[0], []).append(Box(row[1], x, y, w, h))
    return boxes


def image_sizes(root: str | Path, image_ids) -> dict[str, tuple[int, int]]:
    """``{image_id: (width, height)}`` of the image files under ``root`` (header reads only);
    images that are not there are left out. Boxes are in these pixels: the released PNGs'
    1024 x 1024, not the metadata's ``OriginalImage[Width, Height]`` (the DICOMs' size, e.g.
    2992 x 2991)."""
    from PIL import Image

    root = Path(root)
    ids = list(image_ids)
    sizes = {}
    for image, relative in zip(ids, _image_paths(root, np.array(ids)).tolist(), strict=True):
        path = root / relative
        if path.is_file():
            with Image.open(path) as opened:
                sizes[image] = opened.size
    return sizes
