"""A W&B Report for a sweep: per label the DeLong table, live panels over the cells' runs, and
the summary run's figures. Built from ``results.json``; publishing needs network and a key.

The report points at runs rather than copying numbers into panels: each label's panel grid is
filtered to the sweep's group and that label's job type, so it shows every cell that was logged
(``wandb sync`` an offline sweep first, then publish).
"""

from __future__ import annotations

from pathlib import Path

from jcxr.report.methods import methods
from jcxr.results import Comparison, SweepResult
from jcxr.summary import power_sentence, sufficiency_sentence


def markdown_table(comparison: Comparison) -> str:
    """AUC ± DeLong SD and 95% CI per resolution, and the adjusted p against the best one."""
    res, best = comparison.resolutions, comparison.best_resolution
    b = res.index(best)
    lines = [
        f"| resolution | AUC | SD | 95% CI | {comparison.correction} p vs {best}px |",
        "|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(res):
        lo, hi = comparison.ci[i]
        p = "-" if i == b else f"{comparison.p_adjusted[i][b]:.3g}"
        lines.append(
            f"| {r}px | {comparison.auc[i]:.3f} | {comparison.se[i]:.3f} | "
            f"{lo:.3f}-{hi:.3f} | {p} |"
        )
    return "\n".join(lines)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def build(results: SweepResult, figures: list[Path], *, project: str, entity: str | None = None,
          config: dict | None = None):  # fmt: skip
    """The report object (``wandb_workspaces.reports.v2.Report``); ``.save()`` publishes it.

    ``entity=None`` means the API key's default entity (resolved online).
    """
    import wandb_workspaces.reports.v2 as wr

    name = results.name
    group = f"Metric('Group') == {_quote(name)}"
    blocks = [
        wr.P(
            "How input resolution changes what the network detects. Every cell is one network "
            "per (label, resolution, architecture, seed), trained with the same effective batch "
            "size; AUCs are compared with DeLong's test for correlated ROC curves on the same "
            "images, p-values adjusted across all resolution pairs."
        ),
        *[wr.P(sufficiency_sentence(c)) for c in results.comparisons.values() if c.sufficient],
        wr.TableOfContents(),
    ]
    for label, comp in results.comparisons.items():
        runs = wr.Runset(
            entity=entity or "",
            project=project,
            name=label,
            filters=f"{group} and Metric('JobType') == {_quote(label)}",
        )
        blocks += [
            wr.H2(label),
            wr.P(
                f"{comp.arch}, {comp.seed_text}, {comp.split_text} "
                f"({comp.n_positive} positive / {comp.n_negative} negative). {comp.method}, "
                f"{comp.unit_text}. Best resolution: {comp.best_resolution}px."
                + (f" {power_sentence(comp)}" if comp.power_80 else "")
            ),
            wr.MarkdownBlock(markdown_table(comp)),
            wr.PanelGrid(
                runsets=[runs],
                panels=[
                    wr.LinePlot(title=f"{label}: validation AUC", x="Step", y=["val/auc"]),
                    wr.LinePlot(title=f"{label}: training loss", x="Step", y=["train/loss"]),
                    wr.LinePlot(title=f"{label}: validation loss", x="Step", y=["val/loss"]),
                    wr.BarPlot(title=f"{label}: best validation AUC", metrics=["auc"]),
                ],
            ),
        ]
    summary = wr.Runset(
        entity=entity or "",
        project=project,
        name="summary",
        filters=f"{group} and Metric('JobType') == 'summary'",
    )
    if config is not None:  # the HTML report's methods, word for word
        blocks += [wr.H2("Methods"), *(wr.P(f"{h}. {t}") for h, t in methods(config, results))]
    blocks += [
        wr.H2("Figures"),
        wr.PanelGrid(
            runsets=[summary],
            panels=[wr.MediaBrowser(title="figures", media_keys=[f.stem for f in figures])],
        ),
    ]
    options = {"entity": entity} if entity else {}
    return wr.Report(
        project=project,
        title=f"jcxr: {name}",
        description=f"Resolution sweep {name!r}: DeLong comparisons across resolutions",
        blocks=blocks,
        width="fluid",
        **options,
    )


def publish(results: SweepResult, figures: list[Path], *, project: str, entity: str | None = None,
            config: dict | None = None):  # fmt: skip
    """Save the report to W&B (online); returns its URL."""
    report = build(results, figures, project=project, entity=entity, config=config)
    report.save()
    return report.url
