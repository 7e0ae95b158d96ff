"""Synthetic chest-radiograph phantoms in the NIH ChestX-ray14 on-disk layout.

Each image is a frontal (PA) view at ``NATIVE`` = 512 px: body, two lungs, heart, mediastinum,
ribs, diaphragm domes, smooth tissue variation and pixel noise. Findings are sized so that their
detectability depends on resolution by construction (sizes at the native 512 px; an image of
``R`` px sees them ``R / 512`` times as large):

| finding      | what is drawn                               | native size      | at 32 px      |
|--------------|---------------------------------------------|------------------|---------------|
| Nodule       | 2-4 round opacities (+0.45) in the lungs    | 8-12 px across   | 0.5-0.75 px   |
| Mass         | one round opacity in a lung                 | 48-72 px across  | 3-4.5 px      |
| Cardiomegaly | heart width / thorax width 0.55-0.65        | (normal 0.38-0.48) | ~3 px wider |
| Effusion     | fluid level filling the base of one lung    | 15-30% of its height | 2-4 px    |

Every lung also holds 20-30 faint, broad "vessel" blobs (Gaussian, sigma 10-14 px, +0.02-0.04)
whose integrated density equals a nodule's. At 32 px both shrink below a pixel (partial volume)
and become the same kind of one-pixel spot, so only resolution separates them: from 64 px up a
nodule is a small, sharp spot several times brighter than any vessel. (Version 1 drew vessels as
sharper, brighter blobs, sigma 5-8 px at +0.08-0.12; a small CNN then failed to learn nodules
even at 128 px within the demo's budget.) At 0.7 mm per native pixel (a 36 cm field), nodules
are 6-8 mm and masses 3.4-5 cm.
Cardiomegaly and nodules/masses are patient traits that persist across a patient's 1-2
images (as on NIH, where an image-level split leaks); effusion is drawn per image.
Everything is deterministic from the seed.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from jcxr._io import atomic_write_bytes, atomic_write_text
from jcxr.data.table import DataError
from jcxr.data.workers import pool as workers_pool

NATIVE = 512
VERSION = 2  # of the drawing: a change here regenerates cached phantoms and their shards
BOXES_VERSION = 2  # of the box file (2: effusions too): a change rewrites only the boxes
FINDINGS = ("Nodule", "Mass", "Cardiomegaly", "Effusion")
PREVALENCE = {"Nodule": 0.3, "Mass": 0.15, "Cardiomegaly": 0.25, "Effusion": 0.2}
CSV_NAME = "Data_Entry_2017_v2020.csv"
BOXES_NAME = "BBox_List_2017.csv"
CSV_HEADER = [
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
    "OriginalImage[Width",
    "Height]",
    "OriginalImagePixelSpacing[x",
    "y]",
]


def _patients(num_images: int, seed: int) -> list[dict]:
    """Patient traits and per-image draws; 1-2 images per patient."""
    rng = np.random.default_rng([seed, 1])
    images, patient = [], 0
    while len(images) < num_images:
        patient += 1
        traits = {
            name: rng.random() < PREVALENCE[name] for name in ("Nodule", "Mass", "Cardiomegaly")
        }
        geometry_seed = int(rng.integers(2**31))
        for follow_up in range(int(rng.integers(1, 3))):
            if len(images) == num_images:
                break
            findings = dict(traits, Effusion=bool(rng.random() < PREVALENCE["Effusion"]))
            images.append(
                {
                    "image": f"{patient:08d}_{follow_up:03d}.png",
                    "patient": patient,
                    "follow_up": follow_up,
                    "findings": findings,
                    "patient_seed": geometry_seed,
                    "image_seed": int(rng.integers(2**31)),
                    "age": int(rng.integers(20, 90)),
                    "sex": "MF"[int(rng.integers(2))],
                }
            )
    return images


def render(
    findings: dict[str, bool], patient_seed: int, image_seed: int, boxes: list | None = None
) -> np.ndarray:
    """One ``[512, 512]`` uint8 radiograph (higher = denser, as in a PNG radiograph).

    ``boxes``: a list to append ``(finding, x, y, w, h)`` to for every nodule, mass and
    effusion, in pixels, as NIH's BBox_List_2017.csv gives them (drawing them changes no
    pixel)."""
    prng = np.random.default_rng(patient_seed)  # anatomy and persistent lesions
    irng = np.random.default_rng(image_seed)  # positioning, effusion, noise
    n = NATIVE
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) / n  # [0, 1)
    dx, dy = irng.normal(0, 0.01, 2)
    x, y = x - dx, y - dy

    def ellipse(cx, cy, rx, ry):
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0

    img = np.full((n, n), 0.04, np.float32)
    thorax = 0.36 + prng.normal(0, 0.015)  # half width of the thorax, image fraction
    img[ellipse(0.5, 0.55, thorax + 0.06, 0.55)] = 0.45  # body soft tissue
    lung_h = 0.30 + prng.normal(0, 0.01)
    lung_top = 0.2
    lungs = []
    for side in (-1, 1):
        cx = 0.5 + side * thorax * 0.52
        mask = ellipse(cx, lung_top + lung_h, thorax * 0.45, lung_h)
        lungs.append((cx, mask))
        img[mask] = 0.16
    # Ribs: bright curved bands across the lungs.
    lung_any = lungs[0][1] | lungs[1][1]
    phase = prng.uniform(0, 2 * np.pi)
    ribs = 0.5 + 0.5 * np.sin(2 * np.pi * (y * 11 + 0.6 * (x - 0.5) ** 2 * 11) + phase)
    img += 0.07 * (ribs > 0.75) * lung_any
    # Mediastinum and heart (on the image's right in a PA view).
    img[(np.abs(x - 0.5) < 0.06) & (y > 0.15) & (y < 0.75)] = 0.5
    ctr = prng.uniform(0.55, 0.65) if findings["Cardiomegaly"] else prng.uniform(0.38, 0.48)
    heart_w = ctr * 2 * thorax
    heart = ellipse(0.5 + heart_w * 0.18, 0.63, heart_w / 2, 0.12)
    img[heart] = 0.55
    # Diaphragm domes below each lung.
    for cx, _ in lungs:
        dome = ellipse(cx, lung_top + 2 * lung_h + 0.08, thorax * 0.5, 0.1)
        img[dome & ~heart] = 0.5

    # Vessel markings: faint broad blobs that a diluted nodule resembles at low resolution.
    for _, lung in lungs:
        ys, xs = np.nonzero(lung[::8, ::8])
        for k in irng.choice(ys.size, int(irng.integers(20, 31)), replace=False):
            _blob(img, ys[k] * 8, xs[k] * 8, irng.uniform(10, 14), irng.uniform(0.02, 0.04))

    # Persistent lesions inside the lungs.
    def lesion(diameter_px, contrast):
        _, lung = lungs[int(prng.integers(2))]
        for _ in range(100):
            px, py = prng.uniform(0.15, 0.85), prng.uniform(0.22, 0.75)
            if lung[int(py * n), int(px * n)]:
                break
        r = diameter_px / 2 / n
        d2 = ((x - px) ** 2 + (y - py) ** 2) / r**2
        # visible where d2 < 1.2: a square of side 2 r sqrt(1.2) around the shifted centre
        half = r * np.sqrt(1.2) * n
        found.append(((px + dx) * n - half, (py + dy) * n - half, 2 * half, 2 * half))
        return contrast * np.clip(1.2 - d2, 0, 1)

    found: list = []
    if findings["Nodule"]:
        for _ in range(int(prng.integers(2, 5))):
            img += lesion(prng.uniform(8, 12), 0.45)
    if boxes is not None:
        boxes += [("Nodule", *b) for b in found]
    found.clear()
    if findings["Mass"]:
        img += lesion(prng.uniform(48, 72), 0.28)
    if boxes is not None:
        boxes += [("Mass", *b) for b in found]
    if findings["Effusion"]:
        cx, lung = lungs[int(irng.integers(2))]
        level = lung_top + 2 * lung_h * (1 - irng.uniform(0.15, 0.30))
        half = thorax * 0.45
        meniscus = level - 0.04 * ((x - cx) / half) ** 2
        img[lung & (y > meniscus)] = 0.48
        if boxes is not None:  # the fluid: from the meniscus's highest point to the lung base
            top, bottom = level - 0.04, lung_top + 2 * lung_h
            boxes.append(("Effusion", (cx - half + dx) * n, (top + dy) * n, 2 * half * n,
                          (bottom - top) * n))  # fmt: skip
    # Smooth tissue variation and quantum noise.
    coarse = irng.normal(0, 1, (8, 8)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse).resize((n, n), Image.BICUBIC))
    img += 0.025 * smooth + irng.normal(0, 0.03, (n, n)).astype(np.float32)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def _blob(img: np.ndarray, cy: int, cx: int, sigma: float, amplitude: float) -> None:
    """Add a Gaussian blob in place, computed only in its 4-sigma window."""
    r = int(4 * sigma)
    y0, y1 = max(cy - r, 0), min(cy + r + 1, img.shape[0])
    x0, x1 = max(cx - r, 0), min(cx + r + 1, img.shape[1])
    yy, xx = np.mgrid[y0:y1, x0:x1]
    img[y0:y1, x0:x1] += amplitude * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))


def _write_one(args) -> list:
    """Render and write one phantom; returns its boxes ``[(finding, x, y, w, h), ...]``."""
    path, findings, patient_seed, image_seed = args
    boxes: list = []
    buffer = io.BytesIO()
    Image.fromarray(render(findings, patient_seed, image_seed, boxes)).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return boxes


def _boxes_only(args) -> list:
    """One phantom's boxes, rendered and not written."""
    _, findings, patient_seed, image_seed = args
    boxes: list = []
    render(findings, patient_seed, image_seed, boxes)
    return boxes


def generate(root: str | Path, num_images: int = 2000, *, seed: int = 0, workers: int = 2) -> Path:
    """Write ``num_images`` phantoms to ``root/images/`` and ``root/Data_Entry_2017_v2020.csv``.

    Reuses what is there: an existing CSV made with the same arguments means the phantoms are
    complete (the CSV is written last, atomically). Returns the CSV path.
    """
    if num_images < 1:
        raise DataError(f"num_images = {num_images}; expected at least 1 phantom")
    root = Path(root)
    csv_path = root / CSV_NAME
    stamp = root / ".phantom.json"
    complete = (csv_path.is_file() and stamp.is_file()
                and stamp.read_text() == signature(num_images, seed))  # fmt: skip
    boxes_stamp = root / ".phantom_boxes.json"
    boxes_current = boxes_stamp.is_file() and boxes_stamp.read_text() == str(BOXES_VERSION)
    if complete and (root / BOXES_NAME).is_file() and boxes_current:
        return csv_path
    images = _patients(num_images, seed)
    jobs = [
        (root / "images" / im["image"], im["findings"], im["patient_seed"], im["image_seed"])
        for im in images
    ]
    # phantoms made before the boxes file existed get it by rendering again (same pixels)
    task = _boxes_only if complete else _write_one
    (root / "images").mkdir(parents=True, exist_ok=True)
    if workers > 1:
        with workers_pool(workers) as pool:
            boxes = list(pool.map(task, jobs, chunksize=16))
    else:
        boxes = [task(job) for job in jobs]
    # the lesions' boxes in NIH's BBox_List_2017.csv layout, so reports can mark them
    rows = ["Image Index,Finding Label,Bbox [x,y,w,h],,,"]
    for im, found in zip(images, boxes, strict=True):
        rows += [
            f"{im['image']},{name},{x:.3f},{y:.3f},{w:.3f},{h:.3f}" for name, x, y, w, h in found
        ]
    atomic_write_text(root / BOXES_NAME, "\n".join(rows) + "\n")
    atomic_write_text(boxes_stamp, str(BOXES_VERSION))
    if complete:
        return csv_path
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for im in images:
        labels = "|".join(name for name in FINDINGS if im["findings"][name]) or "No Finding"
        writer.writerow(
            [
                im["image"],
                labels,
                im["follow_up"],
                im["patient"],
                im["age"],
                im["sex"],
                "PA",
                NATIVE,
                NATIVE,
                0.7,
                0.7,
            ]
        )
    atomic_write_text(csv_path, out.getvalue())
    atomic_write_text(stamp, signature(num_images, seed))
    return csv_path


def signature(num_images: int, seed: int) -> str:
    """What identifies a set of phantoms: same signature, same pixels."""
    return json.dumps(
        {"num_images": num_images, "seed": seed, "native": NATIVE, "version": VERSION},
        sort_keys=True,
    )
