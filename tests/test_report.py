"""The report's pieces against references: ROC points against scikit-learn, the methods text
against the config it is written from, figures saved as PNG and SVG."""

from html.parser import HTMLParser

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from jcxr.report import figures
from jcxr.report.methods import methods, provenance
from jcxr.results import Cell, CellResult, SweepResult


@pytest.mark.parametrize("levels", [None, 3])
def test_roc_points_equal_scikit_learn(levels):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = y + rng.normal(size=300)
    if levels:
        s = np.round(s * levels)
    fpr, tpr = figures.roc_points(y, s)
    want_fpr, want_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, want_fpr, atol=1e-15)
    np.testing.assert_allclose(tpr, want_tpr, atol=1e-15)


def test_methods_are_written_from_the_config_and_the_cells():
    config = {
        "data": {"source": "nih", "split_by": "patient", "train_fraction": 0.7,
                 "val_fraction": 0.1, "split_seed": 3, "resize": "area"},
        "model": {"head": "concat_pool", "pretrained": "weights/", "dtype": "bfloat16"},
        "train": {"effective_batch_size": 64, "epochs": 5, "loss": "weighted_bce",
                  "max_rotation": 20.0, "max_scale": 0.0},
        "optim": {"recipe": "adam", "learning_rate": 5e-4},
        "eval": {"tta_views": 4, "cluster_by": "auto", "noninferiority_margin": 0.02},
        "sweep": {"resolutions": [128, 512], "archs": ["resnet34"], "seeds": [0]},
    }  # fmt: skip
    cells = tuple(CellResult(Cell("Mass", r, "resnet34", 0), "done", microbatch_size=m,
                             seconds=12.0, devices=("cpu:0",))
                  for r, m in ((128, 64), (512, 16)))  # fmt: skip
    cohorts = {"Mass": {"splits": {"train": {"images": 700, "positives": 40, "patients": 500}},
                        "positive_weight": 16.5}}  # fmt: skip
    results = SweepResult("x", cells, {}, (), cohorts, {"jcxr_version": "0.1", "git_commit": None})
    text = dict(methods(config, results))
    assert "effective batch 64 images" in text["Training"]
    assert "128 px: microbatch 64 (1 accumulation step(s))" in text["Training"]
    assert "512 px: microbatch 16 (4 accumulation step(s))" in text["Training"]
    assert "rotation 20" in text["Training"] and "scale" not in text["Training"]
    assert "train 700 images (40 positive, 500 patients)" in text["Data"]
    assert "ImageNet weights" in text["Model"] and "bfloat16" in text["Model"]
    assert "4 augmented views" in text["Evaluation"]
    assert "within 0.02 AUC" in text["Statistics"]
    rows = dict(provenance(results))
    assert (
        "not a git checkout" in rows["jcxr"]
        and "12 s on cpu:0" in rows["cell Mass__resnet34__r512__s0"]
    )


def test_every_figure_is_saved_as_png_and_svg(tmp_path):
    plt = figures.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = figures.save(fig, tmp_path / "line.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "line.svg").read_bytes()[:400]


class ReportParser(HTMLParser):
    """Section ids, every image's src, and the text, for checking a report without a browser."""

    def __init__(self):
        super().__init__()
        self.sections, self.images, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs.get("src", ""))

    def handle_data(self, data):
        self.text.append(data)


def test_written_files_are_readable_as_a_plain_open_would_make_them(tmp_path):
    import os
    import stat

    from jcxr._io import atomic_write_text

    atomic_write_text(tmp_path / "report.html", "<html></html>")
    plain = tmp_path / "plain.html"
    plain.write_text("<html></html>")
    mode = stat.S_IMODE(os.stat(tmp_path / "report.html").st_mode)
    assert mode == stat.S_IMODE(os.stat(plain).st_mode)  # not mkstemp's owner-only 0o600


def test_example_boxes_are_the_findings_boxes_as_fractions_of_the_image(tmp_path):
    from jcxr.data import nih, phantom
    from jcxr.report import _boxes

    phantom.generate(tmp_path, 12, seed=1, workers=1)
    boxes = nih.read_boxes(tmp_path)
    with_mass = [i for i, v in boxes.items() if any(b.label == "Mass" for b in v)]
    no_crop = [{}] * (len(with_mass) + 1)
    got = _boxes(tmp_path, [*with_mass, "absent.png"], "Mass", no_crop, "crop")
    for image, fractions in zip(with_mass, got, strict=False):
        want = [(b.x / 512, b.y / 512, b.width / 512, b.height / 512)
                for b in boxes[image] if b.label == "Mass"]  # fmt: skip
        np.testing.assert_allclose(np.array(fractions), np.array(want), rtol=1e-12)
    assert got[-1] == [] and _boxes(None, ["x.png"], "Mass", [{}], "crop") == [[]]


def test_example_boxes_move_with_the_lung_crop_and_the_squaring(tmp_path):
    """The example figure outlines a finding where prepare put its pixels: a box on a 600 x 500
    image cut to (100, 50, 400, 350) is 50 px in from the crop's corner."""
    from jcxr.report import _boxes

    (tmp_path / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\na.png,Mass,150,100,60,30\n"
    )
    cropped = [{"crop": [100, 50, 400, 350], "size": [600, 500]}]
    ((got,),) = _boxes(tmp_path, ["a.png"], "Mass", cropped, "crop")
    np.testing.assert_allclose(got, np.array([50, 50, 60, 30]) / 300, rtol=1e-12)
    # no lung crop, a 600 x 500 image squared by a centre crop: 50 px off the left
    wide = [{"size": [600, 500]}]
    ((got,),) = _boxes(tmp_path, ["a.png"], "Mass", wide, "crop")
    np.testing.assert_allclose(got, np.array([100, 100, 60, 30]) / 500, rtol=1e-12)
    assert _boxes(tmp_path, ["a.png"], "Nodule", wide, "crop") == [[]]
