"""The report's methods section, written from the run's own record: ``config.json`` and what
the sweep wrote into ``results.json`` (cohorts, per-cell microbatches and wall time,
provenance). Nothing here is typed by hand, so it cannot drift from what ran."""

from __future__ import annotations

from jcxr.results import SweepResult


def methods(config: dict, results: SweepResult) -> list[tuple[str, str]]:
    """``[(heading, paragraph), ...]`` describing how the sweep was made."""
    d, m, t, o, e = (config.get(k, {}) for k in ("data", "model", "train", "optim", "eval"))
    sweep = config.get("sweep", {})
    out = [("Data", _data(d, results))]
    out.append(("Preprocessing", (
        f"Images resized to each resolution with {d.get('resize', 'area')} interpolation, "
        f"square by {d.get('square', 'crop')}, stored as pre-resized ArrayRecord shards; "
        f"resolutions {', '.join(f'{r} px' for r in sweep.get('resolutions', ()))}."
    )))  # fmt: skip
    pretrained = "ImageNet weights ported from torchvision" if m.get("pretrained") else (
        "random initialisation")  # fmt: skip
    out.append(("Model", (
        f"{', '.join(sweep.get('archs', ()))}; head {m.get('head', 'linear')}; {pretrained}; "
        f"compute dtype {m.get('dtype', 'float32')}; {_batchnorm(m, t)}."
    )))  # fmt: skip
    out.append(("Training", _training(t, o, results)))
    tta = e.get("tta_views", 0)
    views = f"{tta} augmented views averaged with the original" if tta else "no test-time views"
    unit = "a study scored by the max over its views" if e.get("study_level") else "per image"
    seeds = ", ".join(map(str, sweep.get("seeds", ())))
    out.append(("Evaluation", f"Best epoch by validation AUC; {views}; {unit}; seeds {seeds}."))
    out.append(("Statistics", _statistics(e, results)))
    return out


def provenance(results: SweepResult) -> list[tuple[str, str]]:
    """``[(field, value), ...]``: code, config hash, machine, devices, wall time per cell."""
    p = results.provenance
    commit = p.get("git_commit") or "none (not a git checkout)"
    rows = [
        ("jcxr", f"{p.get('jcxr_version', '?')}, commit {commit}"),
        ("config sha256", p.get("config_sha256", "?")),
        ("machine", p.get("machine", "?")),
        ("backend", p.get("jax", "?")),
        ("devices", ", ".join(p.get("devices", ())) or "?"),
        ("started", p.get("started", "?")),
        ("sweep wall time", f"{p['wall_seconds']:.0f} s" if "wall_seconds" in p else "?"),
    ]  # fmt: skip
    for c in results.cells:
        seconds = "-" if c.seconds is None else f"{c.seconds:.0f} s"
        rows.append(
            (f"cell {c.cell.id}", f"{c.status}, {seconds} on {', '.join(c.devices) or '?'}")
        )
    return rows


def _data(d: dict, results: SweepResult) -> str:
    split = (f"the source's official test set, train and validation {d.get('train_fraction')} : "
             f"{d.get('val_fraction')} of the rest" if d.get("test_split") == "official" else
             f"train / validation / test {d.get('train_fraction')} / {d.get('val_fraction')} / "
             f"the rest")  # fmt: skip
    parts = [f"Source {d.get('source')}; splits grouped by {d.get('split_by', 'patient')} "
             f"({split}), split seed {d.get('split_seed', 0)}."]  # fmt: skip
    if d.get("folds"):
        parts.append(
            f"{d['folds']}-fold cross-validation: train and validation images together cut "
            f"into {d['folds']} folds grouped by {d.get('split_by', 'patient')}, the same at "
            "every resolution; each fold's network trains on the others and selects its best "
            "epoch on its own fold; the test set is in no fold."
        )
    if d.get("subsample_size"):
        parts.append(f"Positive-enriched subsample of {d['subsample_size']} images.")
    for label, cohort in results.cohorts.items():
        sizes = "; ".join(
            f"{name} {s['images']} images ({s['positives']} positive"
            + (f", {s['patients']} patients" if "patients" in s else "")
            + ")"
            for name, s in cohort["splits"].items()
        )
        parts.append(f"{label}: {sizes}; loss positive weight {cohort['positive_weight']:.3f}.")
    return " ".join(parts)


def _batchnorm(m: dict, t: dict) -> str:
    unit = "studies" if t.get("unit") == "study" else "images"
    group = m.get("batchnorm_group")
    training = (f"BatchNorm in training mode over groups of {group} {unit} at every resolution"
                if group else "BatchNorm in training mode over each microbatch")  # fmt: skip
    precise = t.get("precise_bn_images")
    evaluation = (f"statistics recomputed with the current weights over {precise} training images "
                  "before every evaluation (precise BatchNorm)" if precise
                  else "running statistics for evaluation")  # fmt: skip
    return f"{training}; {evaluation}"


def _training(t: dict, o: dict, results: SweepResult) -> str:
    by_resolution: dict[int, set] = {}
    for c in results.cells:
        if c.microbatch_size:
            by_resolution.setdefault(c.cell.resolution, set()).add(c.microbatch_size)
    effective = t.get("effective_batch_size")
    unit = "studies (a study's logit: the max over its views)" if t.get(
        "unit") == "study" else "images"  # fmt: skip
    micro = "; ".join(
        f"{r} px: microbatch {', '.join(map(str, sorted(ms)))} "
        f"({', '.join(str(effective // m) for m in sorted(ms))} accumulation step(s))"
        for r, ms in sorted(by_resolution.items())
    )
    epochs = f"{t.get('epochs')} epochs"
    if t.get("until_plateau"):
        epochs = (f"until validation AUC had not improved for {t.get('patience')} epochs (at most "
                  f"{t.get('epochs')})")  # fmt: skip
    augment = ", ".join(f"{k.removeprefix('max_')} {t[k]:g}" for k in sorted(t)
                        if k.startswith("max_") and t[k]) or "flips only"  # fmt: skip
    return (
        f"Optimiser recipe {o.get('recipe')} at learning rate {o.get('learning_rate')}; "
        f"{epochs}; loss {t.get('loss')}; effective batch {effective} {unit} at "
        f"every resolution, cut into microbatches for memory ({micro}); augmentation: {augment}."
    )


def _statistics(e: dict, results: SweepResult) -> str:
    comps = list(results.comparisons.values())
    methods = sorted({c.method for c in comps})
    units = "; ".join(f"{c.label}: {c.unit_text}" for c in comps)
    correction = comps[0].correction if comps else "holm"
    split = comps[0].split_text if comps else f"{e.get('compare_on')} set"
    folds = ""
    if comps and comps[0].split == "oof":
        folds = (" (the folds' pooled validation predictions, each image scored by the fold "
                 "model that did not train on it; the test set, scored by the folds' mean "
                 "probability, is compared separately)")  # fmt: skip
    fixed = e.get("noninferiority_reference")
    reference = f"{fixed} px" if fixed else "the best AUC"
    procedure = e.get("noninferiority_procedure", "fixed_sequence").replace("_", " ")
    return (
        f"Resolutions compared on the {split}{folds} with {' / '.join(methods) or 'DeLong'}, every "
        f"pair, {correction}-adjusted; unit of analysis: {units or 'image'} (config "
        f"eval.cluster_by = {e.get('cluster_by', 'auto')}). Smallest sufficient resolution: "
        f"non-inferiority within {e.get('noninferiority_margin', 0.01)} AUC to {reference}, "
        f"one-sided alpha 0.05, {procedure}."
    )
