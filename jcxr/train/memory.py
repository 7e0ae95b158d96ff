"""``microbatch_size="auto"``: the largest microbatch whose train step fits in device memory.

Candidates are the divisors of the effective batch that the mesh can shard evenly, largest
first. Each is *compiled, never run* (:meth:`Steps.memory_bytes` reads XLA's memory analysis),
so finding the limit never crashes a device. The answer is cached in a JSON file per (model,
resolution, dtype, effective batch, device kind and count, budget): a sweep probes each
(architecture, resolution) once, ever.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax

from jcxr._io import atomic_write_text


def default_cache() -> Path:
    root = os.environ.get("JCXR_CACHE_DIR") or Path.home() / ".cache" / "jcxr"
    return Path(root) / "microbatch.json"


def device_budget(device, fraction: float) -> int:
    """Bytes one device may use: ``fraction`` of its memory limit (an accelerator's allocator
    limit; on CPU, the host's physical memory shared by its virtual devices)."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"] * fraction)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(total * fraction / max(1, len(jax.local_devices())))


def candidates(effective_batch_size: int, devices: int, group: int = 1) -> list[int]:
    """Microbatch sizes that divide the effective batch and shard evenly over ``devices`` in
    whole BatchNorm groups of ``group`` images per device, largest first."""
    group = group or 1
    sizes = [
        m
        for m in range(effective_batch_size, 0, -1)
        if effective_batch_size % m == 0 and m % (devices * group) == 0
    ]
    if not sizes:
        raise ValueError(
            f"config.train.effective_batch_size = {effective_batch_size} has no divisor that "
            f"shards over {devices} devices in whole BatchNorm groups of {group}"
        )
    return sizes


def choose_microbatch(
    steps,
    *,
    key: str,
    resolution: int,
    budget_bytes: int,
    cache: Path | None = None,
    log=print,
) -> int:
    """The largest candidate whose compiled step needs at most ``budget_bytes`` per device.

    ``key`` names the model (architecture, head, dtype, remat); the device kind, device count,
    resolution, effective batch and BatchNorm group (``steps``') and budget are added here.
    Does not change ``steps``: the caller sets the answer with :meth:`Steps.set_microbatch_size`.
    """
    effective_batch_size, group = steps.effective_batch_size, steps.batchnorm_group or 1
    device = steps.mesh.devices.flat[0]
    full_key = (
        f"{key}|{resolution}px|E{effective_batch_size}|G{group}|"
        f"{device.device_kind}x{steps.mesh.size}|"
        f"budget{budget_bytes}B"
    )
    cache = cache or default_cache()
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if full_key in known:
        return int(known[full_key]["microbatch_size"])
    probed = {}
    chosen = None
    for m in candidates(effective_batch_size, steps.mesh.size, group):
        probed[m] = steps.memory_bytes(m, resolution)
        if probed[m] <= budget_bytes:
            chosen = m
            break
    if chosen is None:
        smallest = min(probed)
        raise MemoryError(
            f"{key} at {resolution} px: even a microbatch of {smallest} needs "
            f"{probed[smallest] / 2**30:.2f} GiB per device, over the budget of "
            f"{budget_bytes / 2**30:.2f} GiB (config.parallel.memory_fraction); use remat, "
            "bfloat16, a smaller model or more devices"
        )
    log(
        f"microbatch auto: {chosen} of {effective_batch_size} at {resolution} px "
        f"({probed[chosen] / 2**20:.0f} MiB per device, budget {budget_bytes / 2**20:.0f} MiB)"
    )
    known = json.loads(cache.read_text()) if cache.is_file() else {}  # another process may add
    known[full_key] = {"microbatch_size": chosen, "bytes": probed[chosen], "probed": probed}
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, json.dumps(known, indent=1, sort_keys=True))
    return chosen
