"""The report as one self-contained HTML page: every image embedded, no script, no network.

Every AUC carries its split ("test AUC", "validation AUC") and every comparison its unit of
analysis, so no number can be read as another.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from jcxr.convergence import describe
from jcxr.report.methods import methods, provenance
from jcxr.results import SweepResult
from jcxr.summary import (
    convergence_warnings,
    observer_sentence,
    power_sentence,
    sufficiency_sentence,
)

esc = html.escape
SECTIONS = ("answer", "seen", "comparisons", "archs", "external", "roc", "localisation", "training",
            "cells", "methods", "provenance")  # fmt: skip
# only when the sweep has several architectures, validated externally (config.eval.external) or
# mapped where its networks look
OPTIONAL = ("archs", "external", "localisation")

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f4f4f4}img{max-width:100%}figure{margin:1em 0}
.true-size img{image-rendering:pixelated;max-width:none;margin-right:8px;vertical-align:bottom}
.answer li{font-size:1.1em;margin:.3em 0}caption{caption-side:bottom;font-size:.85em;color:#555}
tr.flagged td{background:#fff3cd}.check{color:#8a5a00}"""


def page(results: SweepResult, config: dict, figures: dict[str, list[Path]],
         examples: dict[str, dict[int, np.ndarray]], manifest: dict,
         localisation: list[dict] = ()) -> str:  # fmt: skip
    body = [
        f"<h1>jcxr: {esc(results.name)}</h1>",
        _answer(results),
        _seen(figures["seen"], examples),
        _comparisons(results, figures["overview"] + figures["pvalues"]),
        _between_archs(results),
        _external(results),
        _section("roc", "ROC curves", _images(figures["roc"])),
        _localisation(figures.get("localisation", []), localisation),
        _section("training", "How each cell trained", _images(figures["training"])),
        _cells(results),
        _methods(config, results, manifest),
        _provenance(results),
    ]
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>jcxr report: '
        f"{esc(results.name)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _section(key: str, title: str, content: str) -> str:
    return f'<section id="{key}"><h2>{esc(title)}</h2>{content}</section>'


def _images(paths: list[Path]) -> str:
    return "".join(
        f'<figure><img alt="{esc(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{esc(p.stem)} (SVG: '
        f"figures/{esc(p.with_suffix('.svg').name)})</figcaption></figure>"
        for p in paths
    )


def _answer(results: SweepResult) -> str:
    items = "".join(
        f"<li>{esc(sufficiency_sentence(c))}</li>"
        for c in results.comparisons.values()
        if c.sufficient
    )
    checks = "".join(
        f"<li>{esc(label)}, {esc(warning)}</li>"
        for label, c in results.comparisons.items()
        for warning in convergence_warnings(results, c)
    )
    if checks:
        checks = (
            '<p class="check">Before reading a difference between resolutions as the images\' '
            "doing, check these cells (marked in the cell table): a cell that did not train as "
            f"far as it could makes its resolution look worse than it is.</p><ul>{checks}</ul>"
        )
    return _section("answer", "The answer", f'<ul class="answer">{items}</ul>{checks}')


def _seen(paths: list[Path], examples: dict[str, dict[int, np.ndarray]]) -> str:
    parts = []
    for label, images in examples.items():
        row = "".join(
            f'<img alt="{esc(label)} at {r} px" width="{r}" height="{r}" '
            f'src="data:image/png;base64,{_png(images[r][0])}">'
            for r in sorted(images)
        )
        sizes = ", ".join(f"{r}" for r in sorted(images))
        parts.append(f'<p class="true-size"><b>{esc(label)}</b>, one positive test image at true '
                     f"pixel size ({sizes} px):<br>{row}</p>")  # fmt: skip
    note = ("<p>Test images that hold the finding, the same images at every resolution of the "
            "sweep (chosen as the highest resolution's most confident positives); below, "
            "upscaled without smoothing.</p>")  # fmt: skip
    return _section("seen", "What the network sees", note + "".join(parts) + _images(paths))


def _comparisons(results: SweepResult, heatmaps: list[Path]) -> str:
    parts = []
    for label, comp in results.comparisons.items():
        split = f"{comp.split_text.removesuffix(' set')} AUC"
        rows = "".join(
            f"<tr><td>{r}px</td><td>{a:.3f}</td><td>{s:.3f}</td><td>{lo:.3f}-{hi:.3f}</td></tr>"
            for r, a, s, (lo, hi) in zip(comp.resolutions, comp.auc, comp.se, comp.ci, strict=True)
        )
        res = comp.resolutions
        head = "".join(f"<th>{r}px</th>" for r in res)
        pvals = "".join(
            f"<tr><th>{r}px</th>" + "".join(
                "<td>-</td>" if i == j else f"<td>{comp.p_adjusted[i][j]:.3g}</td>"
                for j in range(len(res))) + "</tr>"
            for i, r in enumerate(res)
        )  # fmt: skip
        power = f"<p>{esc(power_sentence(comp))}</p>" if comp.power_80 else ""
        if label in results.observers:
            power += (
                f"<p>Phantoms: {esc(observer_sentence(results.observers[label]))}, on the same "
                "images. The networks' shortfall below it is what training left on the table; "
                "real data has no such observer.</p>"
            )
        parts.append(
            f"<h3>{esc(label)} ({esc(comp.arch)}, {esc(comp.seed_text)})</h3>"
            f"<p>{esc(comp.method)}; unit of analysis: {esc(comp.unit_text)}; "
            f"{comp.n_positive} positive / {comp.n_negative} negative.</p>"
            f"<table><tr><th>resolution</th><th>{split}</th><th>SD</th><th>95% CI</th></tr>"
            f"{rows}<caption>{esc(split)} per resolution, {esc(comp.unit_text)}</caption></table>"
            f"<table><tr><th>{esc(comp.correction)}-adjusted p</th>{head}</tr>{pvals}</table>"
            f"{power}"
        )
    return _section("comparisons", "Resolution comparisons", "".join(parts) + _images(heatmaps))


def _between_archs(results: SweepResult) -> str:
    """Each (label, resolution, seed)'s architectures on the same images (paired DeLong)."""
    if not results.between_archs:
        return ""
    parts = ["<p>The architectures of each label, resolution and training seed on the same "
             "images: AUC (SD) and Holm-adjusted p of every pair (paired DeLong).</p>"]  # fmt: skip
    for comp in results.between_archs:
        archs = comp["archs"]
        head = "".join(f"<th>{esc(a)}</th>" for a in archs)
        rows = []
        for i, a in enumerate(archs):
            cells = "".join("<td></td>" if i == j else f"<td>{comp['p_adjusted'][i][j]:.2g}</td>"
                            for j in range(len(archs)))  # fmt: skip
            rows.append(f"<tr><th>{esc(a)}</th><td>{comp['auc'][i]:.3f} "
                        f"({comp['se'][i]:.3f})</td>{cells}</tr>")  # fmt: skip
        caption = (f"{esc(comp['label'])}, {comp['resolution']} px, seed {comp['seed']}, "
                   f"{esc(comp['split'])} set, {esc(comp['unit'])}")  # fmt: skip
        parts.append(f"<table><caption>{caption}</caption><tr><th></th><th>AUC (SD)</th>{head}"
                     f"</tr>{''.join(rows)}</table>")  # fmt: skip
    return _section("archs", "Between architectures", "".join(parts))


def _external(results: SweepResult) -> str:
    """Each cell's internal test set against the external one (config.eval.external)."""
    cells = [c for c in results.cells if "external" in c.splits and "test" in c.splits]
    if not cells:
        return ""

    def auc(m):
        low, high = max(0.0, m["auc"] - 1.96 * m["auc_se"]), min(1.0, m["auc"] + 1.96 * m["auc_se"])
        return f"{m['auc']:.3f} ({low:.3f}-{high:.3f})"

    rows = []
    for c in cells:
        t, e = c.splits["test"], c.splits["external"]
        diff = (f"{e['auc_minus_test']:+.3f} ({e['auc_minus_test_low']:+.3f} to "
                f"{e['auc_minus_test_high']:+.3f})" if "auc_minus_test" in e else "")  # fmt: skip
        p = f"{e['p_vs_test']:.2g}" if "p_vs_test" in e else ""
        k = c.cell
        rows.append(f"<tr><td>{esc(k.label)}</td><td>{k.resolution}</td><td>{esc(k.arch)}</td>"
                    f"<td>{k.seed}</td><td>{auc(t)}</td><td>{auc(e)}</td><td>{diff}</td>"
                    f"<td>{p}</td><td>{e['sensitivity']:.3f} / {e['specificity']:.3f}</td>"
                    "</tr>")  # fmt: skip
    head = ("<tr><th>label</th><th>px</th><th>arch</th><th>seed</th><th>internal test AUC "
            "(95% CI)</th><th>external AUC (95% CI)</th><th>external - internal (95% CI)</th>"
            "<th>p (unpaired DeLong)</th><th>external sensitivity / specificity at 0.5</th>"
            "</tr>")  # fmt: skip
    note = ("<p>Each cell's best network on its own test split and on the external dataset "
            "(every image with the label). The two sets share no case, so their AUCs are "
            "compared by unpaired DeLong (variance of the difference = the sum of the two "
            "DeLong variances).</p>")  # fmt: skip
    return _section(
        "external", "External validation", note + f"<table>{head}{''.join(rows)}</table>"
    )


def _localisation(paths: list[Path], rows: list[dict]) -> str:
    if not paths:
        return ""
    maps = sorted({f"{r['method']} at {r['arch']}'s {r.get('layer', 'last stage')}" for r in rows})
    note = (f"<p>Class activation maps ({esc('; '.join(maps))}) of each cell's best network on "
            "test images that hold its finding, scored against their boxes: the pointing game's "
            "hit rate (95% CI) by resolution, beside a random map's (dotted). A high AUC with a "
            "low hit rate means the network decides on something other than the boxed finding. "
            "Then, per finding, the same images at every resolution: the map over the image, "
            "the boxes in green, the map's maximum as a white cross. All overlays and the full "
            "table (energy, IoU): <code>explain/</code> in the workdir.</p>")  # fmt: skip
    return _section("localisation", "Where the network looks", note + _images(paths))


def _cells(results: SweepResult) -> str:
    def fmt(v):
        return "" if v is None else f"{v:.4f}"

    rows = []
    for c in results.cells:
        m, k = c.metrics, c.cell
        seconds = "" if c.seconds is None else f"{c.seconds:.0f}"
        rows.append(
            ('<tr class="flagged">' if c.flags else "<tr>")
            + f"<td>{esc(k.label)}</td><td>{k.resolution}</td><td>{esc(k.arch)}</td>"
            f"<td>{k.seed}</td><td>{c.fold_text}</td><td>{esc(c.status)}</td>"
            f"<td>{c.best_epoch or ''}</td>"
            f"<td>{fmt(m.get('auc'))}</td><td>{fmt(m.get('auc_se'))}</td>"
            f"<td>{fmt(c.splits.get('test', {}).get('auc'))}</td>"
            f"<td>{fmt(m.get('sensitivity'))}</td><td>{fmt(m.get('specificity'))}</td>"
            f"<td>{c.microbatch_size or ''}</td><td>{seconds}</td>"
            f"<td>{esc(describe(c.flags))}</td></tr>"
        )
    head = ("<tr><th>label</th><th>resolution</th><th>arch</th><th>seed</th><th>fold</th>"
            "<th>status</th>"
            "<th>best epoch</th><th>validation AUC (best epoch)</th><th>validation SE</th>"
            "<th>test AUC</th><th>validation sensitivity</th><th>validation specificity</th>"
            "<th>microbatch</th><th>seconds</th><th>convergence</th></tr>")  # fmt: skip
    note = ("<p>Per cell, per image. The best epoch is chosen by validation AUC; the test AUC is "
            "that epoch's.</p>")  # fmt: skip
    if any(c.folds for c in results.cells):
        note += ("<p>k-fold cross-validation: each fold validates on its own fold. A pooled row "
                 "gives the AUC of every fold's out-of-fold predictions together (validation "
                 "columns) and the test AUC of the folds' mean probability.</p>")  # fmt: skip
    return _section("cells", "Cells", note + f"<table>{head}{''.join(rows)}</table>")


def _methods(config: dict, results: SweepResult, manifest: dict) -> str:
    paragraphs = "".join(f"<p><b>{esc(h)}.</b> {esc(t)}</p>" for h, t in methods(config, results))
    if manifest:
        paragraphs += (
            f"<p><b>Shards.</b> {esc(str(manifest.get('source')))} records, resized with "
            f"{esc(str(manifest.get('resize')))}, square by {esc(str(manifest.get('square')))}, "
            f"source CSV sha256 {esc(str(manifest.get('source_csv_sha256', ''))[:16])}.</p>"
        )
    return _section("methods", "Methods", paragraphs)


def _provenance(results: SweepResult) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in provenance(results))
    return _section("provenance", "Provenance", f"<table>{rows}</table>")


def _png(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
