"""Machine description printed at the top of every benchmark, for docs/benchmarks.md."""

import datetime
import json
import os
import platform


def describe() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{datetime.date.today().isoformat()} | {cpu} | {os.cpu_count()} cores | "
        f"Python {platform.python_version()}"
    )


def append_jsonl(path, row: dict) -> None:
    """One benchmark row per line, for joining runs (bench/torch_reference.py --compare)."""
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
