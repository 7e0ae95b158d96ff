"""Dataset sources and splits on the real NIH metadata and on CheXpert-format CSVs."""

import csv
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jcxr.data import chexpert, nih, phantom, splits
from jcxr.data.table import DataError

NIH_ROOT = Path(__file__).parent / "data" / "nih"

# ../shared/METHODS.md: positives (single-finding cases) from the real metadata.
METHODS_COUNTS = {
    "Emphysema": (2516, 892),
    "Cardiomegaly": (2776, 1093),
    "Hernia": (227, 110),
    "Atelectasis": (11559, 4215),
    "Edema": (2303, 628),
    "Effusion": (13317, 3955),
    "Mass": (5782, 2139),
    "Nodule": (6331, 2705),
}
# Sabottke & Spieler 2020, Table 1, "Loss Function Weight".
SABOTTKE_WEIGHTS = {
    "Emphysema": 6.949,
    "Cardiomegaly": 6.205,
    "Hernia": 87.105,
    "Atelectasis": 0.730,
    "Edema": 7.684,
    "Effusion": 0.502,
    "Mass": 2.459,
    "Nodule": 2.159,
}


@pytest.fixture(scope="module")
def nih_table():
    return nih.read_metadata(NIH_ROOT)


def test_real_nih_counts_equal_methods(nih_table):
    assert len(nih_table) == 112_120 and nih_table.num_patients == 30_805
    counts = nih_table.counts()
    for label, (positives, single) in METHODS_COUNTS.items():
        assert (counts[label]["positives"], counts[label]["single_finding"]) == (positives, single)


def test_sabottke_subsample_reproduces_the_papers_loss_weights(nih_table):
    for label, weight in SABOTTKE_WEIGHTS.items():
        sub = splits.positive_enriched_subsample(nih_table, label, size=20_000, seed=0)
        assert sub.size == 20_000 and sub.positives == METHODS_COUNTS[label][0]
        assert sub.positive_weight == sub.negatives / sub.positives
        # The paper prints 3 decimals, sometimes rounded (6.205), sometimes truncated (87.105).
        assert abs(sub.positive_weight - weight) < 1e-3
        column = nih_table.label(label)[sub.rows]
        assert (column == 1).sum() == sub.positives and len(np.unique(sub.rows)) == 20_000
    hernia = splits.positive_enriched_subsample(nih_table, "Hernia", size=2_000)
    assert (hernia.positives, hernia.negatives) == (227, 1773)


def test_patient_split_never_shares_a_patient_and_meets_fractions(nih_table):
    parts = splits.grouped_split(nih_table, {"train": 0.7, "val": 0.1, "test": 0.2}, seed=3)
    patients = [set(nih_table.patient_ids[rows]) for rows in parts.values()]
    assert not (patients[0] & patients[1]) and not (patients[0] & patients[2])
    assert not (patients[1] & patients[2])
    assert sum(len(r) for r in parts.values()) == len(nih_table)
    for name, fraction in {"train": 0.7, "val": 0.1, "test": 0.2}.items():
        assert len(parts[name]) / len(nih_table) == pytest.approx(fraction, abs=0.01)


def test_image_split_only_when_asked_and_it_leaks(nih_table):
    parts = splits.grouped_split(nih_table, {"train": 0.8, "val": 0.2}, split_by="image")
    shared = set(nih_table.patient_ids[parts["train"]]) & set(nih_table.patient_ids[parts["val"]])
    assert len(shared) > 1000  # what the patient split exists to prevent
    with pytest.raises(DataError, match="split_by"):
        splits.grouped_split(nih_table, {"train": 1.0}, split_by="study")


def test_same_seed_same_split_whatever_the_row_order(nih_table):
    sub = nih_table.subset(np.arange(0, len(nih_table), 7))
    shuffled = sub.subset(np.random.default_rng(1).permutation(len(sub)))
    a = splits.grouped_split(sub, {"train": 0.8, "val": 0.2}, seed=5)
    b = splits.grouped_split(shuffled, {"train": 0.8, "val": 0.2}, seed=5)
    for name in a:
        assert sub.image_ids[a[name]].tolist() == shuffled.image_ids[b[name]].tolist()
    c = splits.grouped_split(sub, {"train": 0.8, "val": 0.2}, seed=6)
    assert sub.image_ids[c["val"]].tolist() != sub.image_ids[a["val"]].tolist()
    s1 = splits.positive_enriched_subsample(sub, "Nodule", size=3000, seed=2)
    s2 = splits.positive_enriched_subsample(shuffled, "Nodule", size=3000, seed=2)
    assert sub.image_ids[s1.rows].tolist() == shuffled.image_ids[s2.rows].tolist()


def test_kfold_is_patient_grouped_complete_and_balanced(nih_table):
    sub = nih_table.subset(np.arange(0, len(nih_table), 5))
    folds = splits.kfold(sub, 5, seed=0)
    rows = np.concatenate(folds)
    assert np.array_equal(np.sort(rows), np.arange(len(sub)))
    owners = [set(sub.patient_ids[f]) for f in folds]
    assert all(not (owners[i] & owners[j]) for i in range(5) for j in range(i + 1, 5))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 0.02 * len(sub)


def write_2017_variant(path: Path) -> None:
    """The original 2017 release's quirks: trailing empty column, ages like '058Y'."""
    with gzip.open(NIH_ROOT / "Data_Entry_2017_v2020.csv.gz", "rt") as handle:
        rows = list(csv.reader(handle))[:3001]
    out = [rows[0] + [""]]
    for row in rows[1:]:
        out.append([*row[:4], f"{int(row[4]):03d}Y", *row[5:], ""])
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(out)


def test_both_header_variants_read_the_same(tmp_path, nih_table):
    write_2017_variant(tmp_path / "Data_Entry_2017.csv")
    old = nih.read_metadata(tmp_path)
    assert old.image_ids.tolist() == nih_table.image_ids[:3000].tolist()
    np.testing.assert_array_equal(old.labels, nih_table.labels[:3000])


def test_bad_nih_csvs_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="no NIH metadata CSV"):
        nih.read_metadata(tmp_path)
    bad = tmp_path / "Data_Entry_2017_v2020.csv"
    bad.write_text("Image Index,Labels,Patient ID\na.png,Mass,1\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['Finding Labels'"):
        nih.read_metadata(tmp_path)
    header = (
        ",".join(
            [
                *nih.REQUIRED_COLUMNS[:4],
                "Patient Age",
                "Patient Gender",
                "View Position",
                "a",
                "b",
                "c",
                "d",
            ]
        )
        + "\n"
    )
    bad.write_text(
        header + "a.png,Mass,0,1,50,M,PA,1,1,1,1\nb.png,Mass|Tumour,0,1,50,M,PA,1,1,1,1\n"
    )
    with pytest.raises(DataError, match=r"line 3 \(b.png\): unknown finding 'Tumour'"):
        nih.read_metadata(tmp_path)
    good = "a.png,Mass,0,1,50,M,PA,1,1,1,1\n"
    bad.write_text(header + good + "b.png,Mass,0,1,50,M\n")  # 6 fields: no View Position
    with pytest.raises(DataError, match=r"line 3: 6 fields, expected 11 \(the header's\)"):
        nih.read_metadata(tmp_path)
    bad.write_text(header)
    with pytest.raises(DataError, match="a header and no data rows"):
        nih.read_metadata(tmp_path)
    bad.write_bytes(header.encode() + good.encode() + "c\xe9.png,Mass,0,2,50,M,PA,1,1,1,1\n".encode(
        "latin-1"
    ))  # fmt: skip
    with pytest.raises(DataError, match=r"Data_Entry_2017_v2020.csv: line 3: byte 0xe9 is not"):
        nih.read_metadata(tmp_path)
    bad.write_text("\ufeff" + header + good)  # a UTF-8 byte-order mark before the header
    assert nih.read_metadata(tmp_path).image_ids.tolist() == ["a.png"]


def test_image_folders_and_official_lists(tmp_path, nih_table):
    rows = np.arange(6)
    shutil.copy(NIH_ROOT / "Data_Entry_2017_v2020.csv.gz", tmp_path)
    (tmp_path / "images_001" / "images").mkdir(parents=True)
    (tmp_path / "images_001" / "images" / nih_table.image_ids[0]).write_bytes(b"")
    (tmp_path / "train_val_list.txt").write_text("\n".join(nih_table.image_ids[rows[:4]]))
    (tmp_path / "test_list.txt").write_text("\n".join(nih_table.image_ids[rows[4:]]))
    table = nih.read_metadata(tmp_path)
    assert table.paths[0] == f"images_001/images/{nih_table.image_ids[0]}"
    assert table.paths[1] == f"images/{nih_table.image_ids[1]}"
    official = nih.official_split(tmp_path, table)
    assert official["train_val"].tolist() == [0, 1, 2, 3] and official["test"].tolist() == [4, 5]
    assert table.official_split[:7].tolist() == ["train"] * 4 + ["test"] * 2 + [""]
    assert nih_table.official_split is None  # no lists, no official split


# --------------------------------------------------------------------------- CheXpert


def write_chexpert(root: Path, prefix="CheXpert-v1.0-small", split="train"):
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *chexpert.LABELS]
    col = {name: i for i, name in enumerate(header)}

    def row(patient, study, view, frontal, appa, **labels):
        r = [
            f"{prefix}/{split}/patient{patient:05d}/study{study}/view{view}_x.jpg",
            "Male",
            "60",
            frontal,
            appa,
        ] + [""] * len(chexpert.LABELS)
        for name, value in labels.items():
            r[col[name.replace("_", " ")]] = value
        return r

    rows = [
        row(1, 1, 1, "Frontal", "PA", Cardiomegaly="1.0", Atelectasis="-1.0", Edema="0.0"),
        row(1, 1, 2, "Lateral", "", Cardiomegaly="1.0", Atelectasis="-1.0", Edema="0.0"),
        row(1, 2, 1, "Frontal", "AP", Cardiomegaly="-1.0", Consolidation="-1.0", Edema="1.0"),
        row(2, 1, 1, "Frontal", "AP", Cardiomegaly="0.0", Consolidation="1.0", Atelectasis="1.0"),
        row(3, 1, 1, "Frontal", "PA", Pleural_Effusion="-1.0", Consolidation="0.0"),
    ]
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{split}.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def test_chexpert_valid_csv_is_the_official_test_set(tmp_path):
    write_chexpert(tmp_path)
    assert chexpert.read_dataset(tmp_path).official_split is None  # no valid.csv
    write_chexpert(tmp_path, split="valid")
    t = chexpert.read_dataset(tmp_path, policy="chizari2021")
    assert len(t) == 10 and t.official_split.tolist() == ["train"] * 5 + ["test"] * 5
    assert "/valid/patient00001/" in t.paths[5] and t.study_ids[5] == "patient00001/study1"
    valid = chexpert.read_metadata(tmp_path, "valid", policy="chizari2021")
    np.testing.assert_array_equal(t.labels[5:], valid.labels)
    assert len(t.csv_sha256.split(",")) == 2


@pytest.mark.parametrize("prefix", ["CheXpert-v1.0-small", "CheXpert-v1.0"])
def test_chexpert_policies_blanks_and_studies_by_hand(tmp_path, prefix):
    write_chexpert(tmp_path, prefix)
    t = chexpert.read_metadata(tmp_path, policy="chizari2021")
    assert len(t) == 5 and t.num_patients == 3
    nan = np.nan
    np.testing.assert_array_equal(t.label("Cardiomegaly"), [1, 1, 0, 0, nan])  # U-Zeros
    np.testing.assert_array_equal(t.label("Atelectasis"), [1, 1, nan, 1, nan])  # U-Ones
    np.testing.assert_array_equal(t.label("Consolidation"), [nan, nan, nan, 1, 0])  # U-Ignore
    np.testing.assert_array_equal(t.label("Pleural Effusion"), [nan, nan, nan, nan, 1])
    studies, labels = chexpert.study_labels(t)
    assert studies.tolist() == [
        "patient00001/study1",
        "patient00001/study2",
        "patient00002/study1",
        "patient00003/study1",
    ]
    card = labels[:, t.label_names.index("Cardiomegaly")]
    np.testing.assert_array_equal(card, [1, 0, 0, nan])
    blank_negative = chexpert.read_metadata(tmp_path, policy="ones", blank="negative")
    np.testing.assert_array_equal(blank_negative.label("Pneumonia"), [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(blank_negative.label("Cardiomegaly"), [1, 1, 1, 0, 0])
    frontal_pa = chexpert.read_metadata(tmp_path, frontal_only=True, views=("PA",))
    assert len(frontal_pa) == 2


def test_chexpert_study_score_is_the_max_over_views():
    studies, scores = chexpert.study_scores(np.array(["s1", "s2", "s1"]), np.array([0.2, 0.5, 0.9]))
    assert studies.tolist() == ["s1", "s2"] and scores.tolist() == [0.9, 0.5]


def test_chexpert_bad_input(tmp_path):
    write_chexpert(tmp_path)
    text = (tmp_path / "train.csv").read_text().replace("-1.0", "maybe", 1)
    (tmp_path / "train.csv").write_text(text)
    with pytest.raises(DataError, match=r"line 2, column .*found 'maybe', expected 1, 0, -1"):
        chexpert.read_metadata(tmp_path)
    with pytest.raises(DataError, match="unknown uncertainty policy"):
        chexpert.read_metadata(tmp_path, policy={"Edema": "twos"})
    with pytest.raises(DataError, match=r"no valid\.csv"):
        chexpert.read_metadata(tmp_path, "valid")


# --------------------------------------------------------------------------- describe, phantoms


def run_data_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "jcxr.data", *map(str, args)], capture_output=True, text=True
    )


def test_describe_cli_json_shape_on_real_metadata():
    out = run_data_cli("describe", "nih", "--root", NIH_ROOT, "--label", "Edema", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["images"] == 112_120 and info["patients"] == 30_805
    assert info["labels"]["Edema"] == {"positives": 2303, "single_finding": 628}
    assert info["subsample"] == {
        "label": "Edema",
        "size": 20_000,
        "positives": 2303,
        "negatives": 17_697,
        "positive_weight": 17_697 / 2303,
    }
    text = run_data_cli("describe", "nih", "--root", NIH_ROOT)
    assert "Hernia" in text.stdout and "30,805" in text.stdout
    bad = run_data_cli("describe", "nih", "--root", NIH_ROOT, "--label", "Tumour")
    assert bad.returncode == 2 and "unknown label 'Tumour'" in bad.stderr


def test_describe_chexpert_counts_studies_with_the_preset(tmp_path):
    write_chexpert(tmp_path)
    info = json.loads(run_data_cli("describe", "chexpert", "--root", tmp_path, "--json").stdout)
    assert info["studies"]["Cardiomegaly"] == {"studies": 3, "positives": 1}
    assert info["studies"]["Atelectasis"] == {"studies": 2, "positives": 2}


def test_phantoms_are_deterministic_and_in_the_nih_layout(tmp_path):
    a = phantom.generate(tmp_path / "a", 40, seed=7, workers=1)
    b = phantom.generate(tmp_path / "b", 40, seed=7, workers=1)
    assert a.read_text() == b.read_text()
    for name in ("00000001_000.png", "00000005_000.png"):
        assert (tmp_path / "a/images" / name).read_bytes() == (
            tmp_path / "b/images" / name
        ).read_bytes()
    table = nih.read_metadata(tmp_path / "a")
    assert len(table) == 40 and table.num_patients < 40  # several images per patient
    counts = table.counts()
    assert all(counts[name]["positives"] > 0 for name in phantom.FINDINGS)
    # A persistent patient trait is shared by all of that patient's images.
    for patient in np.unique(table.patient_ids):
        rows = table.patient_ids == patient
        assert len(np.unique(table.label("Cardiomegaly")[rows])) == 1


def _spot_score(grey: np.ndarray, resolution: int) -> float:
    """A hand-made nodule detector: the brightest small spot (image minus its local mean)."""
    from scipy import ndimage

    from jcxr.data.shards import resize

    image = resize(grey, resolution, "bilinear").astype(np.float32)
    spots = image - ndimage.gaussian_filter(image, 1.5 * resolution / 128)
    return float(np.sort(spots.ravel())[-3:].mean())


def test_phantom_nodules_are_told_from_vessels_only_above_32_px():
    """The phantoms' design: at 32 px a nodule is a one-pixel spot like any vessel, from 64 px
    up it is the brightest small spot in the image (drawing version 1 failed at 64 px: 0.64)."""
    from sklearn.metrics import roc_auc_score

    none = dict.fromkeys(phantom.FINDINGS, False)
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 2 == 1
    images = [
        phantom.render(dict(none, Nodule=bool(y)), *map(int, rng.integers(2**31, size=2)))
        for y in labels
    ]
    auc = {r: roc_auc_score(labels, [_spot_score(im, r) for im in images]) for r in (32, 64, 128)}
    assert auc[32] < 0.75 and auc[64] > 0.85 and auc[128] > 0.95, auc


def test_phantoms_regenerate_when_the_drawing_changes(tmp_path, monkeypatch):
    csv_path = phantom.generate(tmp_path, 6, seed=1, workers=1)
    first = (tmp_path / "images" / "00000001_000.png").stat().st_mtime_ns
    phantom.generate(tmp_path, 6, seed=1, workers=1)  # cached: nothing rewritten
    assert (tmp_path / "images" / "00000001_000.png").stat().st_mtime_ns == first
    monkeypatch.setattr(phantom, "VERSION", phantom.VERSION + 1)
    assert phantom.generate(tmp_path, 6, seed=1, workers=1) == csv_path
    assert (tmp_path / "images" / "00000001_000.png").stat().st_mtime_ns != first
    assert json.loads((tmp_path / ".phantom.json").read_text())["version"] == phantom.VERSION


def test_real_nih_boxes_and_image_sizes():
    boxes = nih.read_boxes(NIH_ROOT)
    assert sum(len(v) for v in boxes.values()) == 984  # the release's 984 boxes of 8 findings
    assert len({b.label for v in boxes.values() for b in v}) == 8
    first = boxes["00013118_008.png"][0]
    assert first.label == "Atelectasis" and first.x == pytest.approx(225.084745762712)
    # the boxes are in the released PNGs' 1024 px, not the metadata's OriginalImage size (the
    # DICOM's, 2992 x 2991 for this image): sizes come from the image files, absent here
    assert nih.image_sizes(NIH_ROOT, ["00013118_008.png"]) == {}


def test_bad_box_files_name_the_line(tmp_path):
    (tmp_path / nih.BOXES_NAME).write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
                                           "a.png,Mass,1,2,three,4\n")  # fmt: skip
    with pytest.raises(DataError, match=r"line 2: expected image, finding and four numbers"):
        nih.read_boxes(tmp_path)
    (tmp_path / nih.BOXES_NAME).write_text("Image,Label\na.png,Mass\n")
    with pytest.raises(DataError, match="expected 'Image Index,Finding Label"):
        nih.read_boxes(tmp_path)
    assert nih.read_boxes(tmp_path / "elsewhere") == {}


def test_phantom_boxes_sit_on_their_lesions_and_change_no_pixel(tmp_path):
    findings = {name: name in ("Nodule", "Mass") for name in phantom.FINDINGS}
    boxes: list = []
    with_boxes = phantom.render(findings, 11, 12, boxes)
    np.testing.assert_array_equal(with_boxes, phantom.render(findings, 11, 12))
    assert {b[0] for b in boxes} == {"Nodule", "Mass"}
    image = with_boxes.astype(np.float32)
    for name, x, y, w, h in boxes:
        cy, cx = int(y + h / 2), int(x + w / 2)
        window = image[cy - 20 : cy + 20, cx - 20 : cx + 20]
        peak_y, peak_x = np.unravel_index(window.argmax(), window.shape)
        if name == "Nodule":  # the brightest spot near a nodule's box centre is the nodule
            assert abs(peak_y - 20) <= 3 and abs(peak_x - 20) <= 3
        assert window.max() - np.median(window) > 40


def test_phantom_effusion_boxes_hold_the_fluid():
    """The fluid (density 0.48; lung 0.16) fills the lower part of its box, which spans its
    lung's width and the drawn fluid level's height (15-30% of the lung, plus the meniscus)."""
    findings = {name: name == "Effusion" for name in phantom.FINDINGS}
    for seeds in [(1, 2), (3, 4), (5, 6)]:
        boxes: list = []
        image = phantom.render(findings, *seeds, boxes).astype(np.float32)
        ((name, x, y, w, h),) = boxes
        assert name == "Effusion" and 0 < x < x + w < 512 and 0 < y < y + h < 512
        rows = slice(int(y + 0.6 * h), int(y + 0.9 * h))  # below the meniscus, above the base
        fluid = image[rows, int(x + 0.3 * w) : int(x + 0.7 * w)] / 255
        assert np.mean(np.abs(fluid - 0.48) < 0.1) > 0.9, seeds  # fluid, noise and ribs aside
        assert 0.12 < h / 512 < 0.25 and 0.2 < w / 512 < 0.4


def test_a_new_box_file_version_rewrites_only_the_boxes(tmp_path, monkeypatch):
    phantom.generate(tmp_path, 12, seed=1, workers=1)
    images = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()}
    (tmp_path / nih.BOXES_NAME).write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n")
    phantom.generate(tmp_path, 12, seed=1, workers=1)  # same version: kept as it is
    assert nih.read_boxes(tmp_path) == {}
    monkeypatch.setattr(phantom, "BOXES_VERSION", phantom.BOXES_VERSION + 1)
    phantom.generate(tmp_path, 12, seed=1, workers=1)
    assert nih.read_boxes(tmp_path) != {}
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()} == images


def test_phantom_folders_get_their_boxes_file_even_when_made_before_it(tmp_path):
    phantom.generate(tmp_path, 12, seed=1, workers=1)
    made = nih.read_boxes(tmp_path)
    images = {p.name: p.read_bytes() for p in (tmp_path / "images").iterdir()}
    (tmp_path / nih.BOXES_NAME).unlink()  # a folder from before boxes were written
    phantom.generate(tmp_path, 12, seed=1, workers=1)
    assert nih.read_boxes(tmp_path) == made
    first = next(iter(images))
    assert nih.image_sizes(tmp_path, [first]) == {first: (512, 512)}
    assert {p.name: p.read_bytes() for p in (tmp_path / "images").iterdir()} == images
    table = nih.read_metadata(tmp_path)
    with_lesion = [i for i, row in zip(table.image_ids, table.labels, strict=True)
                   if row[table.label_names.index("Mass")] == 1]  # fmt: skip
    assert all(any(b.label == "Mass" for b in made[i]) for i in with_lesion)
