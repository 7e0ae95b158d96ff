"""PadChest and OpenI readers on their real metadata (tests/data/), Cardona Cardenas et al.
2020's cohorts, and bad rows."""

import ast
import csv
import gzip
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jcxr.data import load_table, openi, padchest, shards
from jcxr.data.table import DataError

DATA = Path(__file__).parent / "data"  # the real metadata, as tests/data/README.md says
PADCHEST = DATA / "padchest"
OPENI = DATA / "openi"


@pytest.fixture(scope="module")
def raw_padchest():
    """The CSV's rows read with the csv module alone (the independent count)."""
    with gzip.open(PADCHEST / f"{padchest.CSV_NAME}.gz", "rt", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_padchest_physician_pa_images_are_the_documented_count(raw_padchest):
    physician_pa = [r for r in raw_padchest
                    if r["Projection"] == "PA" and r["MethodLabel"] == "Physician"]  # fmt: skip
    assert len(physician_pa) == 23_961  # ../shared/data/README.md
    marked = sum(map(marked_exclude, physician_pa))
    table = padchest.read_metadata(PADCHEST, projections=("PA",), physician_only=True)
    assert len(table) == 23_961 - marked and marked == 52
    assert set(table.views) == {"PA"}
    assert int((table.label("No Finding") == 1).sum()) == 8_708
    assert int((table.label("Cardiomegaly") == 1).sum()) == 2_140


def test_padchest_cardenas2020_cohort_is_close_to_the_papers_table_1():
    """Paper: 8,707 normal and 1,859 cardiomegaly images (10,566). Ours: 8,708 and 1,812: the
    paper does not list the device labels it excluded (docs/studies.md)."""
    table = load_table("padchest", PADCHEST, preset="cardenas2020")
    cardio = table.label("Cardiomegaly")
    assert table.label_names == ("Cardiomegaly",)
    assert (int((cardio == 1).sum()), int((cardio == 0).sum())) == (1_812, 8_708)
    assert abs(1_812 - 1_859) / 1_859 < 0.03 and abs(8_708 - 8_707) <= 1
    # everything else (other findings, without normal) is excluded, not negative
    assert int(np.isnan(cardio).sum()) == len(table) - 1_812 - 8_708
    assert table.num_patients < len(table)  # patients repeat: splits group by them
    keep = padchest.read_metadata(PADCHEST, preset="cardenas2020", exclude_devices=False)
    assert int((keep.label("Cardiomegaly") == 1).sum()) == 2_140


def marked_exclude(row: dict) -> bool:
    """PadChest's own mark for an image unfit to read (the label ``exclude``, spaces aside)."""
    labels = row["Labels"]
    return labels not in ("", "nan") and "exclude" in {x.strip() for x in ast.literal_eval(labels)}


def test_padchest_labels_are_harmonised_and_the_device_list_names_real_labels(raw_padchest):
    table = padchest.read_metadata(PADCHEST)
    names = set(table.label_names)
    assert {"Cardiomegaly", "No Finding", "Effusion", "Nodule", "Mass"} <= names
    assert not {"cardiomegaly", "normal", "pleural effusion", "exclude"} & names
    assert set(padchest.DEVICES) <= names  # no typo in the list: each is a PadChest label
    assert table.paths[0] == f"0/{table.image_ids[0]}"  # ImageDir/ImageID
    assert len(raw_padchest) == 160_861
    assert len(table) == 160_861 - sum(map(marked_exclude, raw_padchest))


def write_padchest(root: Path, rows: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    header = ["ImageID", "ImageDir", "PatientID", "StudyID", "Projection", "MethodLabel",
              "Labels", "Report"]  # fmt: skip
    path = root / padchest.CSV_NAME
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow(
                {
                    "ImageID": f"im{i}.png",
                    "ImageDir": "0",
                    "PatientID": f"p{i}",
                    "StudyID": f"s{i}",
                    "Projection": "PA",
                    "MethodLabel": "Physician",
                    "Labels": "['normal']",
                    "Report": "sin hallazgos, normal",
                    **row,
                }
            )
    return path


@pytest.mark.parametrize("row,message", [
    ({"Projection": "LATERAL"}, r"line 3, column 'Projection': found 'LATERAL', expected one of"),
    ({"Labels": "['cardiomegaly'"}, r"line 3, column 'Labels': found \"\['cardiomegaly'\""),
    ({"Labels": "cardiomegaly"}, r"line 3, column 'Labels': found 'cardiomegaly', expected a list"),
    ({"MethodLabel": "Doctor"}, r"line 3, column 'MethodLabel': found 'Doctor'"),
])  # fmt: skip
def test_bad_padchest_rows_are_refused_naming_file_line_and_column(tmp_path, row, message):
    path = write_padchest(tmp_path, [{}, row])
    with pytest.raises(DataError, match=message) as error:
        padchest.read_metadata(tmp_path)
    assert str(path) in str(error.value)


def test_padchest_missing_columns_and_unknown_labels_are_named(tmp_path):
    path = write_padchest(tmp_path, [{}])
    text = path.read_text().replace("MethodLabel", "Method")
    path.write_text(text)
    with pytest.raises(DataError, match=r"missing column\(s\) \['MethodLabel'\]"):
        padchest.read_metadata(tmp_path)
    write_padchest(tmp_path, [{}])
    with pytest.raises(DataError, match=r"PadChest has no finding \['Cardiomegali'\]"):
        padchest.read_metadata(tmp_path, labels=("Cardiomegali",))
    with pytest.raises(DataError, match="preset 'chizari2021' is not one of padchest's"):
        load_table("padchest", tmp_path, preset="chizari2021")


def test_padchest_16_bit_pngs_become_shards_and_a_missing_image_is_named(tmp_path):
    """The release's layout (ROOT/ImageDir/ImageID, 16-bit grey PNGs) through prepare."""
    rows = [{"Labels": "['cardiomegaly']"}, {}, {"Labels": "['pacemaker', 'cardiomegaly']"}]
    write_padchest(tmp_path / "root", rows)
    ramp = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096) * 16
    (tmp_path / "root" / "0").mkdir()
    for i in range(3):
        Image.fromarray(ramp).save(tmp_path / "root" / "0" / f"im{i}.png")
    table = load_table("padchest", tmp_path / "root", preset="cardenas2020")
    assert list(table.label("Cardiomegaly")) == [1.0, 0.0]  # the pacemaker image is dropped
    shards.prepare(table, tmp_path / "root", tmp_path / "shards", [32], workers=1,
                   progress=False)  # fmt: skip
    pixels = shards.read_pixels(tmp_path / "shards", 32, np.arange(2))
    assert pixels.dtype == np.uint8 and pixels.max() > 200 and pixels.min() < 50
    (tmp_path / "root" / "0" / "im1.png").unlink()
    with pytest.raises(DataError, match=r"im1\.png: image file not found"):
        shards.prepare(table, tmp_path / "root", tmp_path / "shards2", [32], workers=1,
                       progress=False)  # fmt: skip


# ------------------------------------------------------------------------------------ OpenI


def test_openi_cardenas2020_external_set_is_close_to_the_papers():
    """Paper: 1,709 PA images, 1,388 normal and 321 cardiomegaly. Ours, every image whose DICOM
    View Position is PA from a report whose MeSH major terms name normal or cardiomegaly:
    1,711 = 1,445 + 266 (docs/studies.md)."""
    table = load_table("openi", OPENI, preset="cardenas2020")
    cardio = table.label("Cardiomegaly")
    assert (int((cardio == 1).sum()), int((cardio == 0).sum())) == (266, 1_445)
    assert abs(266 + 1_445 - 1_709) <= 2 and set(table.views) == {"PA"}
    assert np.array_equal(table.patient_ids, table.study_ids)  # a report is one exam
    assert table.paths[0] == f"NLMCXR_png/{table.image_ids[0]}.png"


def test_openi_reads_every_report_and_image_and_the_tsne_views():
    table = openi.read_metadata(OPENI)
    assert len(table) == 7_470  # the reports' parentImage ids (README: 3,955 reports)
    assert table.num_patients == 3_955 - 104  # 104 reports have no image
    assert {"Cardiomegaly", "No Finding", "Effusion", "Atelectasis"} <= set(table.label_names)
    by_tsne = openi.read_metadata(OPENI, views_from="tsne")
    views, counts = np.unique(by_tsne.views, return_counts=True)
    assert dict(zip(views, counts, strict=True)) == {"L": 584, "PA": 3_267, "UNK": 3_619}
    assert openi.finding("Cardiomegaly/mild") == "Cardiomegaly"
    assert openi.finding("normal") == "No Finding"
    assert openi.finding("Opacity/lung/base/left") == "Opacity"


def test_openi_reads_an_extracted_folder_as_the_archive(tmp_path):
    with tarfile.open(OPENI / openi.REPORTS) as tar:
        tar.extractall(tmp_path, filter="data")
    shutil.copy(OPENI / "nlmcxr_dicom_metadata.csv.gz", tmp_path)
    a, b = openi.read_metadata(OPENI), openi.read_metadata(tmp_path)
    assert np.array_equal(a.image_ids, b.image_ids) and a.label_names == b.label_names
    np.testing.assert_array_equal(a.labels, b.labels)


def test_a_broken_openi_report_is_named(tmp_path):
    shutil.copy(OPENI / "nlmcxr_dicom_metadata.csv.gz", tmp_path)
    with tarfile.open(tmp_path / openi.REPORTS, "w:gz") as tar:
        data = b"<eCitation><uId id='CXR1'/><MeSH><major>normal</major></MeSH>"
        info = tarfile.TarInfo("ecgen-radiology/1.xml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match=r"NLMCXR_reports\.tgz:ecgen-radiology/1\.xml: not a "):
        openi.read_metadata(tmp_path)
    (tmp_path / "nlmcxr_dicom_metadata.csv.gz").unlink()
    with pytest.raises(DataError, match=r"no nlmcxr_dicom_metadata\.csv"):
        openi.read_metadata(tmp_path)
