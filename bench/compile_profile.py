"""Where a cold XLA:CPU compile of the train step spends its time, sampled with Linux ``perf``.

    python bench/compile_profile.py [--arch densenet121] [--resolution 224] [--batch 32]

Traces and lowers the real train step (effective batch = microbatch = ``--batch``, fp32, no
augmentation), then compiles it cold (no persistent cache) while ``perf record -g`` samples this
process, and reports each compiler phase's share of the sampled CPU time (all threads; XLA
compiles kernels on a thread pool, so shares are of CPU time, not of the wall clock). jaxlib
ships its symbols, so the phases are read from the call graph by function name. Also counts
the compiled program's fusions: loop fusions (code-generated through MLIR and LLVM) and
YNNPACK fusions (library calls). Needs ``perf`` and permission to profile one's own process.
Prints a markdown table for docs/benchmarks.md.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe
from train import build

from jcxr.train import parallel

# Compiler phases by the XLA/LLVM function that encloses them (inclusive time).
PHASES = {
    "HLO passes (fusion, layout, scheduling, ...)": "xla::cpu::CpuCompiler::RunHloPasses",
    "fusion emitters (HLO -> MLIR -> LLVM IR)": "xla::cpu::FusionCompiler::Compile",
    "LLVM IR optimisation": "xla::cpu::IrCompiler::RunIrPasses",
    "LLVM machine code": "xla::cpu::IrCompiler::EmitMachineCode",
}


def perf_report(perf_data: Path) -> str:
    """``perf report`` by symbol with inclusive ("children") and own ("self") percentages."""
    command = ["perf", "report", "-i", str(perf_data), "--children", "--sort", "sym"]
    command += ["-g", "none", "--stdio"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def phase_shares(report: str) -> dict:
    """{phase: share of sampled CPU time}: each phase's function's inclusive percentage."""
    shares = {}
    for phase, symbol in PHASES.items():
        found = [float(m.group(1)) for line in report.splitlines()
                 if (m := re.match(r"\s*([\d.]+)%\s+[\d.]+%\s+\[\.\]\s+(.*)", line))
                 and m.group(2).strip() == symbol]  # fmt: skip
        shares[phase] = max(found, default=0.0) / 100
    return shares


def count_fusions(hlo: str) -> dict:
    """Loop fusions (XLA generates their code) and YNNPACK fusions (library calls) in ``hlo``."""
    kinds = re.findall(r"kind=(k\w+)", hlo)
    return {"loop": kinds.count("kLoop"), "ynnpack": hlo.count('"kind":"__ynn_fusion"')}


def compile_under_perf(lowered):
    """Compile while `perf record` samples this process: (compiled, wall seconds, report).

    perf's data (a few MB) lives in a temporary folder that is gone when this returns.
    """
    with tempfile.TemporaryDirectory(prefix="jcxr-compile-profile-") as folder:
        perf_data = Path(folder) / "perf.data"
        recorder = subprocess.Popen(
            ["perf", "record", "-F", "200", "-g", "-p", str(os.getpid()), "-o", str(perf_data)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # let perf attach before the compile starts
        start = time.perf_counter()
        compiled = lowered.compile()
        seconds = time.perf_counter() - start
        recorder.send_signal(signal.SIGINT)  # perf writes its data and stops on SIGINT
        recorder.wait(timeout=120)
        if not perf_data.exists() or perf_data.stat().st_size == 0:
            sys.exit(
                f"compile_profile: perf record exited with {recorder.returncode} and wrote"
                " nothing; is profiling allowed (kernel.perf_event_paranoid)?"
            )
        return compiled, seconds, perf_report(perf_data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="densenet121")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("perf") is None:
        sys.exit("compile_profile: `perf` was not found on PATH; install linux-tools to run this.")
    jax.config.update("jax_enable_compilation_cache", False)
    mesh = parallel.make_mesh(jax.local_devices())
    steps = build(args.arch, jnp.float32, mesh, augment=False, effective=args.batch)
    start = time.perf_counter()
    lowered = steps.train_step.lower(*steps.train_arguments(args.batch, args.resolution))
    lower_seconds = time.perf_counter() - start

    compiled, compile_seconds, report = compile_under_perf(lowered)
    shares = phase_shares(report)
    fusions = count_fusions(compiled.as_text())
    print(describe(), f"| JAX {jax.__version__} | {args.arch} train step at {args.resolution} px, "
          f"batch {args.batch}, cold compile\n")  # fmt: skip
    print(f"trace + lower {lower_seconds:.1f} s, compile {compile_seconds:.1f} s (wall); "
          f"{fusions['loop']} loop fusions, {fusions['ynnpack']} YNNPACK fusions\n")  # fmt: skip
    print("| phase | share of sampled CPU time |")
    print("|---|---|")
    for phase, share in shares.items():
        print(f"| {phase} | {share:.0%} |")
    print(f"| everything else (runtime setup, buffer assignment, Python) | "
          f"{max(0.0, 1 - sum(shares.values())):.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
