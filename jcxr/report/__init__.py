"""Figures and a self-contained HTML report from a sweep's workdir (results.json)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from jcxr._io import atomic_write_text
from jcxr.results import Comparison, SweepResult, power_sentence, sufficiency_sentence


def _figure_setup():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def auc_vs_resolution(results: SweepResult, path: Path) -> Path:
    """Sabottke & Spieler 2020 Fig 2/4: AUC against resolution, DeLong SD error bars, one line
    per label."""
    plt = _figure_setup()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    marked = False
    for label, comp in results.comparisons.items():
        line = ax.errorbar(comp.resolutions, comp.auc, yerr=comp.se, marker="o", capsize=3,
                           label=label)  # fmt: skip
        smallest = (comp.sufficient or {}).get("smallest")
        if smallest is not None:  # the answer: the smallest sufficient resolution, starred
            auc = comp.auc[comp.resolutions.index(smallest)]
            text = f"smallest sufficient (within {comp.sufficient['margin']:g} AUC)"
            ax.plot([smallest], [auc], marker="*", markersize=18, color=line[0].get_color(),
                    markeredgecolor="black", linestyle="none",
                    label=None if marked else text)  # fmt: skip
            marked = True
    ax.set_xscale("log", base=2)
    resolutions = sorted({r for c in results.comparisons.values() for r in c.resolutions})
    ax.set_xticks(resolutions, [str(r) for r in resolutions])
    ax.set_xlabel("input resolution (px)")
    ax.set_ylabel("AUC (± SD: DeLong, clustered or with seeds)")
    ax.set_title(f"{results.name}: AUC by resolution")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def auc_ratio(results: SweepResult, reference: int, path: Path) -> Path:
    """Sabottke & Spieler 2020 Fig 3: each resolution's AUC over the reference resolution's,
    per label."""
    plt = _figure_setup()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = list(results.comparisons)
    width = 0.8 / max(1, len(labels))
    for k, label in enumerate(labels):
        comp = results.comparisons[label]
        res = comp.resolutions
        ref = reference if reference in res else max(res)
        ratio = np.array(comp.auc) / comp.auc[res.index(ref)]
        ax.bar(np.arange(len(res)) + k * width, ratio, width, label=f"{label} (/{ref}px)")
        ax.set_xticks(np.arange(len(res)) + width * (len(labels) - 1) / 2, [f"{r}px" for r in res])
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_ylabel("AUC ratio to the reference resolution")
    ax.set_title("Low-resolution AUC relative to the reference")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pvalue_heatmap(comp: Comparison, path: Path) -> Path:
    plt = _figure_setup()
    p = np.array(comp.p_adjusted, dtype=float)
    names = [f"{r}px" for r in comp.resolutions]
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(names), 1 + 0.6 * len(names)))
    shown = -np.log10(np.clip(p, 1e-300, 1))
    image = ax.imshow(shown, cmap="viridis")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            if i != j:
                ax.text(
                    j,
                    i,
                    f"{p[i, j]:.2g}",
                    ha="center",
                    va="center",
                    color="white" if shown[i, j] < shown.max() / 2 else "black",
                    fontsize=8,
                )
    fig.colorbar(image, ax=ax, label=f"-log10 p ({comp.correction})")
    ax.set_title(f"{comp.label}: pairwise p ({comp.method.split(' (')[0]})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def build_report(workdir: str | Path) -> tuple[Path, list[Path]]:
    """Write ``figures/*.png`` and ``report.html`` (images embedded) from ``results.json``."""
    workdir = Path(workdir)
    results = SweepResult.load(workdir)
    config = (
        json.loads((workdir / "config.json").read_text())
        if (workdir / "config.json").is_file()
        else {}
    )
    figures_dir = workdir / "figures"
    figures_dir.mkdir(exist_ok=True)
    figures = []
    if results.comparisons:
        reference = config.get("eval", {}).get("reference_resolution", 320)
        figures.append(auc_vs_resolution(results, figures_dir / "auc_vs_resolution.png"))
        figures.append(auc_ratio(results, reference, figures_dir / "auc_ratio.png"))
        for label, comp in results.comparisons.items():
            name = label.replace(" ", "_")
            figures.append(pvalue_heatmap(comp, figures_dir / f"pvalues_{name}.png"))
    report = workdir / "report.html"
    atomic_write_text(report, _html(results, figures))
    return report, figures


def _html(results: SweepResult, figures: list[Path]) -> str:
    esc = html.escape
    rows = []
    for c in results.cells:
        m, k = c.metrics, c.cell
        fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
        best_epoch = "" if c.best_epoch is None else c.best_epoch
        rows.append(
            f"<tr><td>{esc(k.label)}</td><td>{k.resolution}</td><td>{esc(k.arch)}</td>"
            f"<td>{k.seed}</td><td>{esc(c.status)}</td><td>{best_epoch}</td>"
            f"<td>{fmt(m.get('auc'))}</td><td>{fmt(m.get('auc_se'))}</td>"
            f"<td>{fmt(m.get('sensitivity'))}</td><td>{fmt(m.get('specificity'))}</td></tr>"
        )
    sections = []
    for label, comp in results.comparisons.items():
        res = comp.resolutions
        head = "".join(f"<th>{r}px</th>" for r in res)
        body = "".join(
            f"<tr><th>{r}px</th>"
            + "".join(
                "<td>-</td>" if i == j else f"<td>{comp.p_adjusted[i][j]:.3g}</td>"
                for j in range(len(res))
            )
            + "</tr>"
            for i, r in enumerate(res)
        )
        aucs = ", ".join(
            f"{r}px {a:.3f} ± {s:.3f}" for r, a, s in zip(res, comp.auc, comp.se, strict=True)
        )
        power = f"<p>{esc(power_sentence(comp))}</p>" if comp.power_80 else ""
        sections.append(
            f"<h3>{esc(label)} ({esc(comp.arch)}, {esc(comp.seed_text)}, {comp.split} set)</h3>"
            f"<p>{esc(comp.method)}, {esc(comp.unit_text)}.</p>"
            f"<p>AUC ± SD: {aucs}. Best: {comp.best_resolution}px.</p>"
            f"<table><tr><th>{esc(comp.correction)}-adjusted p</th>{head}</tr>{body}</table>"
            f"{power}"
        )
    answers = "".join(
        f"<li>{esc(sufficiency_sentence(comp))}</li>"
        for comp in results.comparisons.values()
        if comp.sufficient
    )
    answers = f"<h2>The answer</h2><ul>{answers}</ul>" if answers else ""
    images = "".join(
        f'<figure><img alt="{esc(f.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(f.read_bytes()).decode()}"><figcaption>{esc(f.stem)}</figcaption></figure>'
        for f in figures
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>jcxr report: {esc(results.name)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}
table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}img{{max-width:100%}}</style></head>
<body><h1>jcxr: {esc(results.name)}</h1>
{answers}
<h2>Cells</h2><table><tr><th>label</th><th>resolution</th><th>arch</th><th>seed</th><th>status</th>
<th>best epoch</th><th>AUC</th><th>SE</th><th>sensitivity</th><th>specificity</th></tr>
{"".join(rows)}</table>
<h2>Resolution comparisons</h2>{"".join(sections)}
<h2>Figures</h2>{images}</body></html>
"""
