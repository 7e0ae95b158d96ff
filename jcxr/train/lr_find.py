"""python -m jcxr.train.lr_find --config configs/NAME.py [--config.FIELD=VALUE] [--workdir DIR]

Smith's learning-rate range test (Sabottke & Spieler 2020 chose their rate this way): train the
config's first (label, resolution, arch) cell for up to ``--steps`` updates while the rate grows
exponentially from ``--min-lr`` to ``--max-lr``; stop when the smoothed loss exceeds 4x its
minimum. Saves ``lr_find.png`` and ``lr_find.json`` (rates, losses, suggestion) in the workdir.
The suggestion is the rate at the steepest descent of the smoothed loss.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from jcxr import _cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "output directory (default workdirs/NAME)")
_STEPS = flags.DEFINE_integer("steps", 100, "most optimiser updates")
_MIN_LR = flags.DEFINE_float("min_lr", 1e-7, "first rate")
_MAX_LR = flags.DEFINE_float("max_lr", 1.0, "last rate")
flags.DEFINE_bool("debug", False, "show the traceback of an error (also: JCXR_DEBUG=1)")


def suggest(rates: np.ndarray, losses: np.ndarray, beta: float = 0.9) -> tuple[np.ndarray, float]:
    """(smoothed losses, the rate where the smoothed loss falls fastest per log-rate)."""
    smoothed, average = np.empty_like(losses), 0.0
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        smoothed[i] = average / (1 - beta ** (i + 1))  # bias-corrected, as fastai
    if len(rates) < 3:
        return smoothed, float(rates[0])
    slope = np.gradient(smoothed, np.log(rates))
    return smoothed, float(rates[int(np.argmin(slope))])


def range_test(config, workdir: Path, steps: int, min_lr: float, max_lr: float) -> dict:
    from jcxr.data.pipeline import Loader
    from jcxr.results import Cell
    from jcxr.train.build import build_steps
    from jcxr.train.inputs import label_data_for, shards_for
    from jcxr.train.optim import make_optimizer

    shard_dir = shards_for(config, workdir)
    s = config.sweep
    cell = Cell(s.labels[0], s.resolutions[0], s.archs[0], s.seeds[0])
    data = label_data_for(config, shard_dir, cell.label)
    loader = Loader(
        shard_dir,
        cell.resolution,
        data.splits["train"],
        data.labels,
        config.train.effective_batch_size,
        train=True,
        seed=cell.seed,
    )
    optim = config.optim.copy_and_resolve_references()
    with optim.unlocked():  # one rate for the whole network: the schedule is the test's own
        optim.recipe = "adam" if optim.recipe == "one_cycle" else optim.recipe
    runner = build_steps(config, cell, data, make_optimizer(optim, 1, 1))
    schedule = np.geomspace(min_lr, max_lr, steps)
    rates, losses, best = [], [], np.inf
    step = 0
    while step < steps:
        for batch in loader:
            runner.set_learning_rate(schedule[step])
            loss = float(runner.step(batch["pixels"], batch["label"], step)["loss"])
            rates.append(float(schedule[step]))
            losses.append(loss)
            step += 1
            best = min(best, loss)
            if step >= steps or not np.isfinite(loss) or loss > 4 * best:
                break
        if step >= steps or not np.isfinite(losses[-1]) or losses[-1] > 4 * best:
            break
    rates, losses = np.array(rates), np.array(losses)
    finite = np.isfinite(losses)
    smoothed, suggestion = suggest(rates[finite], losses[finite])
    out = {
        "label": cell.label,
        "resolution": cell.resolution,
        "arch": cell.arch,
        "rates": rates.tolist(),
        "losses": [float(x) if np.isfinite(x) else None for x in losses],
        "suggested_learning_rate": suggestion,
    }
    _plot(rates[finite], losses[finite], smoothed, suggestion, workdir / "lr_find.png", out)
    from jcxr._io import atomic_write_text

    atomic_write_text(workdir / "lr_find.json", json.dumps(out, indent=2))
    return out


def _plot(rates, losses, smoothed, suggestion, path: Path, info: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(rates, losses, alpha=0.35, label="loss")
    ax.plot(rates, smoothed, label="smoothed")
    ax.axvline(suggestion, color="k", ls="--", label=f"suggested {suggestion:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"LR range test: {info['label']}, {info['arch']}, {info['resolution']} px")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from jcxr.train.config import validate

    config = _CONFIG.value
    try:
        validate(config)
    except ValueError as error:
        sys.exit(f"error: {error}")
    if not 0 < _MIN_LR.value < _MAX_LR.value:
        sys.exit("error: need 0 < --min_lr < --max_lr")
    _cli.use_compilation_cache()
    workdir = Path(_WORKDIR.value or Path("workdirs") / f"{config.name}-lr_find")
    _cli.call(workdir.mkdir, parents=True, exist_ok=True)
    result = _cli.call(range_test, config, workdir, _STEPS.value, _MIN_LR.value, _MAX_LR.value)
    print(
        f"suggested learning rate: {result['suggested_learning_rate']:.3g} "
        f"({len(result['rates'])} steps); plot: {workdir / 'lr_find.png'}"
    )


if __name__ == "__main__":
    app.run(main)
