"""Decoding real archives: DICOM through pydicom on a real chest radiograph (pydicom-data's
RG1_UNCR.dcm: CR, PA, 1955 x 1841, MONOCHROME1, 15 bits stored), and 16-bit PNGs."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from jcxr.data import dicom, images
from jcxr.data.table import DataError

CHEST = get_testdata_file("RG1_UNCR.dcm")  # shipped by the pydicom-data package: no download


def linear_window(x, center, width, low, high):
    """DICOM PS3.3 C.11.2.1.2.1 ("LINEAR"), written out independently of pydicom."""
    below, above = x <= center - 0.5 - (width - 1) / 2, x > center - 0.5 + (width - 1) / 2
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * (high - low) + low
    return np.where(below, low, np.where(above, high, y))


def test_a_real_cr_chest_radiograph_is_windowed_and_inverted():
    ds = pydicom.dcmread(CHEST)
    assert (ds.Modality, ds.PhotometricInterpretation, ds.BitsStored) == ("CR", "MONOCHROME1", 15)
    grey, info = dicom.read(CHEST)
    assert grey.shape == (1955, 1841) and grey.dtype == np.uint8
    assert info == {"pixel_spacing": None, "view": "PA", "photometric": "MONOCHROME1"}
    top = 2**15 - 1  # the stored bits' range, onto which the window maps
    y = linear_window(ds.pixel_array.astype(np.float64), float(ds.WindowCenter),
                      float(ds.WindowWidth), 0, top)  # fmt: skip
    expected = np.rint((1 - y / top) * 255)  # MONOCHROME1: high values are dark
    assert np.abs(grey.astype(int) - expected).max() <= 1
    # bone bright after inversion: the spine column is brighter than the lung fields beside it
    rows = slice(600, 1200)
    spine, lung = grey[rows, 880:960].mean(), grey[rows, 400:600].mean()
    assert spine > lung + 10


def test_without_a_window_the_stored_bits_scale_not_the_images_extremes(tmp_path):
    ds = pydicom.dcmread(CHEST)
    del ds.WindowCenter, ds.WindowWidth
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.save_as(tmp_path / "plain.dcm")
    grey, _ = dicom.read(tmp_path / "plain.dcm")
    expected = np.rint(ds.pixel_array / (2**15 - 1) * 255)
    assert np.abs(grey.astype(int) - expected).max() <= 1
    assert grey.max() < 255  # 26,479 of 32,767: not stretched to white


def test_dicom_goes_through_prepares_decoder_and_broken_files_are_named(tmp_path):
    squared = images.load_grey(Path(CHEST), "crop")
    assert squared.shape == (1841, 1841)
    copy = tmp_path / "exported"  # no suffix: found by the DICM marker
    copy.write_bytes(open(CHEST, "rb").read())
    assert dicom.is_dicom(copy) and np.array_equal(images.load_grey(copy, "crop"), squared)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(open(CHEST, "rb").read()[:5000])
    with pytest.raises(DataError, match=r"broken\.dcm: cannot decode DICOM"):
        images.load_grey(broken)


def test_16_bit_pngs_are_windowed_on_their_own_percentiles(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.integers(200, 3800, (64, 64)).astype(np.uint16)  # 12-bit data in 16 bits
    values[0, :5] = 65535  # a few saturated pixels do not set the scale
    Image.fromarray(values).save(tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").mode == "I;16"
    grey = images.load_grey(tmp_path / "a.png")
    low, high = np.percentile(values.astype(np.float64), [0.5, 99.5])
    expected = np.rint(np.clip((values - low) / (high - low), 0, 1) * 255)
    np.testing.assert_array_equal(grey, expected.astype(np.uint8))
    assert 100 < grey.mean() < 155  # not crushed into the dark by the 65535s


def test_the_shard_index_keeps_each_images_pixel_spacing(tmp_path):
    """A DICOM's Imager Pixel Spacing (or Pixel Spacing) goes into its record header and the
    shard index: mm per source pixel, and mm per pixel at each prepared resolution (the square
    side over the resolution); a PNG, or a DICOM without the tag, has NaN."""
    from jcxr.data import shards
    from jcxr.data.table import Table

    ds = pydicom.dcmread(CHEST)
    ds.ImagerPixelSpacing = [0.175, 0.175]
    ds.save_as(tmp_path / "cr.dcm")
    del ds.ImagerPixelSpacing
    ds.PixelSpacing = [0.2, 0.2]
    ds.save_as(tmp_path / "calibrated.dcm")
    (tmp_path / "plain.dcm").write_bytes(open(CHEST, "rb").read())  # no spacing at all
    Image.fromarray(np.full((300, 200), 90, np.uint8)).save(tmp_path / "film.png")
    files = ["cr.dcm", "calibrated.dcm", "plain.dcm", "film.png"]
    table = Table(source="openi", image_ids=np.array(files), patient_ids=np.array(files),
                  label_names=("Cardiomegaly",), labels=np.array([[1.0], [0.0], [1.0], [0.0]]),
                  views=np.array(["PA"] * 4), paths=np.array(files))  # fmt: skip
    for square, side in (("crop", 1841), ("pad", 1955)):
        out = tmp_path / square
        shards.prepare(table, tmp_path, out, [64, 128], square=square, workers=1,
                       progress=False)  # fmt: skip
        with np.load(shards.index_path(out, 64)) as index:
            np.testing.assert_array_equal(index["pixel_spacing"][:2], [0.175, 0.2])
            assert np.isnan(index["pixel_spacing"][2:]).all()
        for r in (64, 128):
            mm = shards.read_index(out, r).mm_per_pixel
            np.testing.assert_allclose(mm[:2], [0.175 * side / r, 0.2 * side / r])
            assert np.isnan(mm[2:]).all()
    (header,) = shards.read_headers(tmp_path / "pad", 64, [0])
    assert header["pixel_spacing"] == 0.175 and header["side"] == 1955
    assert shards.verify(tmp_path / "pad") == []
