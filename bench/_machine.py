"""Machine description printed at the top of every benchmark, for docs/benchmarks.md."""

import datetime
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
