"""Lung-field cropping at prepare time, on the real lung masks in ../shared/data/lung_masks/."""

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jcxr.data import crop, images, shards
from jcxr.data.table import DataError, Table

MASKS = Path(__file__).parent / "data" / "lung_masks"  # real masks: tests/data/README.md
EMPTY = "16745_2_2.PNG"  # a real mask with no lung drawn


@pytest.fixture(scope="module")
def real_masks(tmp_path_factory):
    """The real masks kept in tests/data (PNG and JPEG, several sizes, one empty)."""
    out = tmp_path_factory.mktemp("masks")
    with zipfile.ZipFile(MASKS / "semantic_masks_v7labs_lungs.zip") as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        for name in names:
            (out / Path(name).name).write_bytes(archive.read(name))
    return out


def lung_pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L")) >= 128


def test_the_box_holds_every_lung_pixel_of_real_masks_with_the_margin(real_masks):
    checked = 0
    for path in sorted(real_masks.iterdir()):
        lung = lung_pixels(path)
        if not lung.any():
            continue
        rows, cols = np.flatnonzero(lung.any(1)), np.flatnonzero(lung.any(0))
        h, w = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
        x0, y0, x1, y1 = crop.lung_box(np.asarray(Image.open(path).convert("L")), lung.shape, 0.1)
        assert x0 <= cols[0] and y0 <= rows[0] and x1 >= cols[-1] + 1 and y1 >= rows[-1] + 1
        # the margin, 10% of the box on each side, unless the image ends first
        assert x0 == max(0, int(np.floor(cols[0] - 0.1 * w)))
        assert y1 == min(lung.shape[0], int(np.ceil(rows[-1] + 1 + 0.1 * h)))
        checked += 1
    assert checked >= 30


def test_a_mask_at_another_size_scales_and_an_empty_mask_is_named(real_masks):
    mask = np.zeros((50, 40), np.uint8)
    mask[10:30, 5:25] = 255
    assert crop.lung_box(mask, (100, 80), margin=0) == (10, 20, 50, 60)  # twice the mask's size
    with pytest.raises(DataError, match=f"{EMPTY}: no lung in the mask"):
        crop.lung_box(np.asarray(Image.open(real_masks / EMPTY).convert("L")), (10, 10),
                      where=str(real_masks / EMPTY))  # fmt: skip


def test_prepare_crops_to_the_lungs_records_the_box_and_verify_checks_it(real_masks, tmp_path):
    """Images named like three real masks (the mask's own picture, darkened), prepared with the
    mask folder: each record is the image cut to its box, squared and resized, with the box in
    its header."""
    stems = [p for p in sorted(real_masks.iterdir()) if lung_pixels(p).any()][:3]
    root = tmp_path / "root"
    root.mkdir()
    for path in stems:
        grey = (np.asarray(Image.open(path).convert("L")) // 2).astype(np.uint8)
        Image.fromarray(grey).save(root / f"{path.stem}.png")
    ids = np.array([f"{p.stem}.png" for p in stems])
    table = Table("test", ids, ids, ("X",), np.zeros((3, 1), np.float32),
                  np.array(["PA"] * 3), ids)  # fmt: skip
    manifest = shards.prepare(table, root, tmp_path / "shards", [32], workers=1, progress=False,
                              crop_to_lungs=real_masks, crop_margin=0.05)  # fmt: skip
    assert manifest["inputs"]["crop"] == {"masks": str(real_masks.resolve()), "margin": 0.05}
    from array_record.python.array_record_module import ArrayRecordReader

    (path,) = sorted((tmp_path / "shards" / "res32").glob("*.array_record"))
    reader = ArrayRecordReader(str(path))
    records = reader.read_all()
    reader.close()
    for record, stem in zip(records, stems, strict=True):
        header = shards.decode_header(record)
        grey = images.decode(root / f"{stem.stem}.png")
        box = crop.lung_box(np.asarray(Image.open(stem).convert("L")), grey.shape, 0.05)
        assert header["crop"] == list(box) and header["size"] == [grey.shape[1], grey.shape[0]]
        x0, y0, x1, y1 = box
        expected = shards.resize(images.to_square(grey[y0:y1, x0:x1], "crop"), 32, "bilinear")
        np.testing.assert_array_equal(shards.decode_pixels(record, 32), expected)
    assert shards.verify(tmp_path / "shards") == []
    headers = shards.read_headers(tmp_path / "shards", 32, [2, 0])
    assert [h["crop"] for h in headers] == [
        shards.decode_header(records[i])["crop"] for i in (2, 0)
    ]
    # another margin is another input: refused, not mixed into the same shards
    with pytest.raises(DataError, match="crop"):
        shards.prepare(table, root, tmp_path / "shards", [32], workers=1, progress=False,
                       crop_to_lungs=real_masks, crop_margin=0.2)  # fmt: skip


def test_a_masker_callable_and_a_missing_mask(real_masks, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    Image.fromarray(np.full((40, 60), 90, np.uint8)).save(root / "nomask.png")
    one = np.array(["nomask.png"])
    table = Table("test", one, one, ("X",), np.zeros((1, 1), np.float32), np.array(["PA"]), one)
    with pytest.raises(DataError, match=r"no lung mask for nomask\.png"):
        shards.prepare(table, root, tmp_path / "a", [16], workers=1, progress=False,
                       crop_to_lungs=real_masks)  # fmt: skip

    def left_half(image_id, grey):  # e.g. a segmentation model's output
        mask = np.zeros_like(grey)
        mask[:, : grey.shape[1] // 2] = 255
        return mask

    manifest = shards.prepare(table, root, tmp_path / "b", [16], workers=1, progress=False,
                              crop_to_lungs=left_half, crop_margin=0.0)  # fmt: skip
    assert manifest["inputs"]["crop"]["masker"].endswith("left_half")
    assert shards.verify(tmp_path / "b") == []


def test_the_prepare_command_crops_padchest_to_the_lungs(real_masks, tmp_path):
    from jcxr.data.__main__ import main

    from .test_data_padchest_openi import write_padchest

    stems = [p.stem for p in sorted(real_masks.iterdir()) if lung_pixels(p).any()][:2]
    root = tmp_path / "padchest"
    write_padchest(root, [{"ImageID": f"{stem}.png"} for stem in stems])
    (root / "0").mkdir()
    for stem in stems:
        Image.fromarray(np.full((300, 260), 120, np.uint16) * 100).save(root / "0" / f"{stem}.png")
    argv = ["prepare", "--source", "padchest", "--root", str(root), "--resolutions", "16",
            "--out", str(tmp_path / "shards"), "--workers", "1", "--crop-to-lungs",
            str(real_masks), "--crop-margin", "0.1"]  # fmt: skip
    assert main(argv) == 0
    crop_input = shards.read_manifest(tmp_path / "shards")["inputs"]["crop"]
    assert crop_input == {"masks": str(real_masks.resolve()), "margin": 0.1}
    assert main(["verify", str(tmp_path / "shards")]) == 0
