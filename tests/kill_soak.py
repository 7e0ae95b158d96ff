"""Kill soak: SIGKILL a small sweep at random moments, rerun, and check the end is exact.

Each run starts ``python -m jcxr.train`` on the demo config made small (its own 240 phantoms,
so drawing phantoms and preparing shards are killed too; one label, 32 and 48 px, 2 epochs),
kills its whole process group after a random delay, and starts again, until a run finishes.
The finished workdir must hold exactly the results of an uninterrupted run: every cell's
history, metrics, step count and predictions, and the comparison.

The suite runs a few kills (tests/test_train.py); the full soak is this script::

    python tests/kill_soak.py --kills 40 --seed 0 --workdir /tmp/soak
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).parent.parent
ARGS = (
    "--config.data.phantom_images=240",
    "--config.sweep.labels=Mass",
    "--config.sweep.resolutions=32,48",
    "--config.sweep.archs=resnet_tiny",
    "--config.train.epochs=2",
    "--config.train.effective_batch_size=16",
    "--config.train.microbatch_size=8",
    "--config.train.checkpoint_every=3",
    "--config.logging.wandb=disabled",
    "--config.logging.progress=False",
)


def command(workdir: Path) -> list[str]:
    config = str(REPO / "configs" / "demo.py")
    return [sys.executable, "-m", "jcxr.train", "--config", config, *ARGS, f"--workdir={workdir}"]


def run(workdir: Path, kill_after: float | None = None) -> int:
    """One run; with ``kill_after`` seconds, SIGKILL its process group then (if still alive)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(command(workdir), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return -9
    if proc.returncode != 0:
        raise RuntimeError(f"run failed ({proc.returncode}):\n{stderr.decode()[-3000:]}")
    return 0


def outcome(workdir: Path) -> dict:
    """What must be identical: every cell's result but its wall time, every prediction, and
    the comparisons (not the provenance: when and how long the run took)."""
    results = json.loads((workdir / "results.json").read_text())
    results.pop("provenance", None)
    for cell in results["cells"]:
        cell.pop("seconds", None)
    predictions = {
        str(p.relative_to(workdir)): {k: v.tolist() for k, v in np.load(p).items()}
        for p in sorted((workdir / "cells").glob("*/predictions_*.npz"))
    }
    return {"results": results, "predictions": predictions}


def soak(reference: Path, workdir: Path, kills: int, seed: int, window: float) -> list[float]:
    """Make ``kills`` SIGKILLs at random moments in ``[0, window)`` s: in one workdir after
    another (``workdir/round-K``), each rerun until it finishes; return the moments. Raises
    AssertionError if a finished workdir differs from ``reference``'s."""
    rng = np.random.default_rng(seed)
    moments, round_ = [], 0
    while len(moments) < kills:
        target = workdir / f"round-{round_}"
        while len(moments) < kills:
            moment = float(rng.uniform(0, window))
            if run(target, kill_after=moment) == 0:
                break  # finished before the kill: nothing left to interrupt in this workdir
            moments.append(moment)
        run(target)
        if outcome(target) != outcome(reference):
            raise AssertionError(f"{target} differs from {reference} after kills at {moments}")
        round_ += 1
    return moments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=float, default=60.0, help="latest kill moment, s")
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    run(args.workdir / "reference")
    moments = soak(args.workdir / "reference", args.workdir / "killed", args.kills, args.seed,
                   args.window)  # fmt: skip
    print(f"{len(moments)} kills at {[round(m, 1) for m in moments]} s: identical results "
          f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
