"""The report's figures, each saved as PNG (embedded in the HTML) and SVG (for papers).

Colours are Okabe & Ito's colour-blind-safe palette; titles and labels are kept inside the
saved area (``bbox_inches="tight"``); axes start where the data do, and say so when that is
not at zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jcxr.results import Comparison, SweepResult

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every colour-vision type
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["axes.prop_cycle"] = plt.cycler(color=PALETTE)
    return plt


def save(fig, path: Path) -> Path:
    """``path`` (PNG) and the same figure as SVG beside it; returns the PNG's path."""
    fig.savefig(path, dpi=120, bbox_inches="tight")
    fig.savefig(path.with_suffix(".svg"), bbox_inches="tight")
    pyplot().close(fig)
    return path


def auc_vs_resolution(results: SweepResult, path: Path) -> Path:
    """Sabottke & Spieler 2020 Fig 2/4: AUC against resolution, one line per label, error bars
    the comparison's SD; the smallest sufficient resolution starred; on phantoms, dashed, the
    reference observer on the same images (the gap is what training left on the table)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    marked = False
    for label, comp in results.comparisons.items():
        line = ax.errorbar(comp.resolutions, comp.auc, yerr=comp.se, marker="o", capsize=3,
                           label=f"{label} ({comp.split_text})")  # fmt: skip
        smallest = comp.sufficient_resolution
        if smallest is not None:
            auc = comp.auc[comp.resolutions.index(smallest)]
            text = f"smallest sufficient (within {comp.sufficient['margin']:g} AUC)"
            ax.plot([smallest], [auc], marker="*", markersize=18, color=line[0].get_color(),
                    markeredgecolor="black", linestyle="none",
                    label=None if marked else text)  # fmt: skip
            marked = True
        observer = results.observers.get(label)
        if observer:
            ax.plot(observer["resolutions"], observer["auc"], linestyle="--", marker=".",
                    color=line[0].get_color(),
                    label=f"{label}: reference observer ({observer['observer']})")  # fmt: skip
    ax.set_xscale("log", base=2)
    resolutions = sorted({r for c in results.comparisons.values() for r in c.resolutions})
    ax.set_xticks(resolutions, [str(r) for r in resolutions])
    ax.set_xlabel("input resolution (px)")
    ax.set_ylabel("test AUC (± SD)")
    ax.set_title(f"{results.name}: AUC by resolution")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def auc_ratio(results: SweepResult, reference: int, path: Path) -> Path:
    """Sabottke & Spieler 2020 Fig 3: each resolution's AUC over the reference resolution's,
    per label; the axis starts just below the smallest ratio (marked), not at 0."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = list(results.comparisons)
    width = 0.8 / max(1, len(labels))
    lowest = 1.0
    for k, label in enumerate(labels):
        comp = results.comparisons[label]
        res = comp.resolutions
        ref = reference if reference in res else max(res)
        ratio = np.array(comp.auc) / comp.auc[res.index(ref)]
        lowest = min(lowest, float(ratio.min()))
        ax.bar(np.arange(len(res)) + k * width, ratio, width, label=f"{label} (/{ref}px)")
        ax.set_xticks(np.arange(len(res)) + width * (len(labels) - 1) / 2, [f"{r}px" for r in res])
    floor = max(0.0, np.floor((lowest - 0.05) * 20) / 20)
    ax.set_ylim(bottom=floor)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_ylabel(f"AUC ratio to the reference (axis from {floor:.2f})")
    ax.set_title("AUC relative to the reference resolution (test set)")
    ax.legend(fontsize=8)
    return save(fig, path)


def pvalue_heatmap(comp: Comparison, path: Path) -> Path:
    plt = pyplot()
    p = np.array(comp.p_adjusted, dtype=float)
    names = [f"{r}px" for r in comp.resolutions]
    fig, ax = plt.subplots(figsize=(2.2 + 0.8 * len(names), 1.6 + 0.7 * len(names)))
    shown = -np.log10(np.clip(p, 1e-300, 1))
    image = ax.imshow(shown, cmap="viridis")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            if i != j:
                colour = "white" if shown[i, j] < shown.max() / 2 else "black"
                ax.text(j, i, f"{p[i, j]:.2g}", ha="center", va="center", color=colour,
                        fontsize=8)  # fmt: skip
    fig.colorbar(image, ax=ax, label=f"-log10 p ({comp.correction})")
    ax.set_title(f"{comp.label}: pairwise p\n{comp.method.split(' (')[0]}", fontsize=10)
    return save(fig, path)


def roc_curves(comp: Comparison, predictions: dict[int, tuple], path: Path) -> Path:
    """One ROC curve per resolution of ``comp`` from ``{resolution: (labels, scores)}``, each
    legend entry with its AUC and the comparison's 95% CI."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, r in enumerate(comp.resolutions):
        labels, scores = predictions[r][:2]
        fpr, tpr = roc_points(labels, scores)
        low, high = comp.ci[i]
        ax.plot(fpr, tpr, lw=1.6,
                label=f"{r}px: AUC {comp.auc[i]:.3f} [{low:.3f}, {high:.3f}]")  # fmt: skip
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, linestyle="--")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(f"{comp.label}: ROC, {comp.split_text} ({comp.arch}, {comp.seed_text})",
                 fontsize=10)  # fmt: skip
    ax.legend(loc="lower right", fontsize=8, title="95% CI", title_fontsize=8)
    ax.set_aspect("equal")
    return save(fig, path)


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0)."""
    order = np.argsort(-scores, kind="stable")
    labels, scores = labels[order] == 1, scores[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # end of each tie group
    tp = np.cumsum(labels)[last]
    fp = np.cumsum(~labels)[last]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def training_curves(label: str, cells, path: Path) -> Path:
    """Small multiples, one panel per cell of ``label`` (cells with at least one epoch):
    training and validation loss (left axis) and validation AUC (right), best epoch marked."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(cells), figsize=(3.2 * len(cells), 3), squeeze=False,
                             sharey=True)  # fmt: skip
    for ax, cell in zip(axes[0], cells, strict=False):
        epochs = [h["epoch"] for h in cell.history]
        ax.plot(epochs, [h.get("train_loss") for h in cell.history], label="train loss",
                color=PALETTE[0])  # fmt: skip
        ax.plot(epochs, [h.get("loss") for h in cell.history], label="val loss", color=PALETTE[1])
        auc_ax = ax.twinx()
        auc_ax.plot(epochs, [h.get("auc") for h in cell.history], label="val AUC",
                    color=PALETTE[2], marker="o", markersize=3)  # fmt: skip
        auc_ax.set_ylim(0.4, 1.0)
        if cell.best_epoch is not None:
            ax.axvline(cell.best_epoch, color="black", lw=0.8, linestyle=":")
        k = cell.cell
        fold = "" if k.fold is None else f", fold {k.fold}"
        ax.set_title(f"{k.resolution}px, {k.arch}, seed {k.seed}{fold}\n"
                     f"best epoch {cell.best_epoch}", fontsize=9)  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
    axes[0][0].set_ylabel("loss (log)")
    first = axes[0][0]
    handles = first.get_lines()[:2] + fig.axes[len(axes[0])].get_lines()[:1]  # losses, AUC
    fig.legend(handles, [h.get_label() for h in handles], loc="upper center", ncol=3,
               bbox_to_anchor=(0.5, 1.12), fontsize=8)  # fmt: skip
    fig.suptitle(f"{label}: training (validation AUC on the right axis, dotted: best epoch)",
                 y=1.2, fontsize=10)  # fmt: skip
    return save(fig, path)


def what_it_sees(label: str, images: dict[int, np.ndarray], boxes: list, path: Path) -> Path:
    """The same test images (rows) at every resolution (columns), each drawn at one display
    size with nearest-neighbour upscaling, so a pixel of the network's input stays a pixel;
    ``boxes[i]``: image i's boxes of the finding as fractions of the side, outlined."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    resolutions = sorted(images)
    rows = len(images[resolutions[0]])
    fig, axes = plt.subplots(rows, len(resolutions), figsize=(2.2 * len(resolutions), 2.3 * rows),
                             squeeze=False)  # fmt: skip
    for j, r in enumerate(resolutions):
        for i in range(rows):
            ax = axes[i][j]
            ax.imshow(images[r][i], cmap="gray", interpolation="nearest", vmin=0, vmax=255)
            for x, y, w, h in boxes[i]:
                # one input pixel of margin, so the outline surrounds a 2 px nodule
                outline = Rectangle((x * r - 1.5, y * r - 1.5), w * r + 2, h * r + 2, fill=False,
                                    edgecolor=PALETTE[1], linewidth=1.2)  # fmt: skip
                ax.add_patch(outline)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{r} x {r} px", fontsize=9)
    marked = " (boxes: where the finding is)" if any(boxes) else ""
    fig.suptitle(f"{label}: test images with the finding, as the network sees them{marked}",
                 fontsize=10)  # fmt: skip
    return save(fig, path)
