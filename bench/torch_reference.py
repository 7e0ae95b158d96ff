"""The PyTorch reference for bench/train.py: the same models, sizes and step, with torchvision.

    python bench/torch_reference.py [--archs resnet34,densenet121,efficientnet_b0]
        [--resolutions 64,224,320,512] [--effective-batch 32] [--microbatch 32] [--steps 10]
        [--modes eager_fp32,eager_amp,compile_amp] [--compare JCXR.jsonl] [--json OUT.jsonl]
        [--profile]

Needs torch + torchvision (not a jcxr dependency). Run it on the same machine right after
``bench/train.py --json JCXR.jsonl``; with ``--compare JCXR.jsonl`` each cell uses jcxr's
microbatch size and the table shows jcxr / PyTorch ratios side by side.

The step matches jcxr's: uint8 ``[E, R, R]`` on the device, grey -> 3 channels and ImageNet
normalisation on the device, one output logit, BCE-with-logits, ``E / M`` accumulated
microbatches, one Adam update. channels-last memory format throughout. Modes:
``eager_fp32``; ``eager_amp`` (bf16 autocast); ``compile_amp`` (``torch.compile`` + bf16
autocast). Compare with ``bench/train.py --no-augment`` for equal work (jcxr's augmentation on
the device is extra work the reference does not do). ``--profile`` runs ``torch.profiler`` over
eager fp32 steps instead and prints, per cell, one JSON line of time by category (read by
``bench/profile_step.py``).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).parent))
from _machine import append_jsonl, describe

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def model_for(arch: str) -> torch.nn.Module:
    model = getattr(torchvision.models, arch)(weights=None)
    if arch.startswith("resnet"):
        model.fc = torch.nn.Linear(model.fc.in_features, 1)
    elif arch.startswith("densenet"):
        model.classifier = torch.nn.Linear(model.classifier.in_features, 1)
    else:  # efficientnet: Sequential(Dropout, Linear)
        model.classifier[-1] = torch.nn.Linear(model.classifier[-1].in_features, 1)
    return model


def train_step(arch, resolution, effective, microbatch, mode, device):
    """One optimiser update of ``arch`` on a fixed random batch, as a function of no arguments."""
    torch.manual_seed(0)
    model = model_for(arch).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    amp = mode.endswith("amp")
    device_type = "cuda" if device.type == "cuda" else "cpu"

    def forward_backward(pixels, labels):
        x = pixels.float().div(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels)
        (loss / (effective // microbatch)).backward()
        return loss

    if mode.startswith("compile"):
        forward_backward = torch.compile(forward_backward)

    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(
        rng.integers(0, 256, (effective, resolution, resolution), dtype=np.uint8)
    ).to(device)
    labels = torch.from_numpy((rng.random(effective) < 0.5).astype(np.float32)).to(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        for chunk, y in zip(pixels.split(microbatch), labels.split(microbatch), strict=True):
            forward_backward(chunk, y)
        optimizer.step()

    return step


def measure(arch, resolution, effective, microbatch, mode, n_steps, device):
    step = train_step(arch, resolution, effective, microbatch, mode, device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    step()
    sync()
    compile_s = time.perf_counter() - start
    for _ in range(2):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    row = {
        "arch": arch,
        "resolution": resolution,
        "mode": mode,
        "effective_batch": effective,
        "microbatch": microbatch,
        "compile_s": compile_s,
        "images_per_s": n_steps * effective / seconds,
    }
    if device.type == "cuda":
        row["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def profile(arch, resolution, effective, microbatch, n_steps) -> dict:
    """Wall ms per eager fp32 step on the CPU, and the profiler's self time (ns) by category,
    as ``bench/profile_step.py`` reads them."""
    step = train_step(arch, resolution, effective, microbatch, "eager_fp32", torch.device("cpu"))
    for _ in range(2):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(n_steps):
            step()
        wall = (time.perf_counter() - start) / n_steps
    totals = {}
    for event in prof.key_averages():
        name = event.key
        if "convolution" in name or "conv2d" in name:
            category = "conv backward (both)" if "backward" in name else "conv forward"
        elif name in ("aten::mm", "aten::addmm", "aten::bmm"):
            category = "matmul"
        else:
            category = "other"
        totals[category] = totals.get(category, 0) + event.self_cpu_time_total * 1000
    return {"arch": arch, "resolution": resolution, "framework": "PyTorch eager",
            "wall_ms": wall * 1000, "op_ns": totals}  # fmt: skip


def compare(jcxr_rows, torch_rows):
    """Markdown: jcxr / PyTorch ratios, fp32 against eager fp32, bf16 against both AMP modes."""
    by = {(r["arch"], r["resolution"], r["mode"]): r["images_per_s"] for r in torch_rows}
    jcxr = {(r["arch"], r["resolution"], r["dtype"]): r for r in jcxr_rows}
    lines = [
        "| arch | px | jcxr fp32 | torch eager fp32 | ratio | jcxr bf16 | torch eager AMP | "
        "ratio | torch.compile AMP | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    cells = sorted({(a, r) for a, r, _ in jcxr}, key=lambda c: (c[0], c[1]))

    def fmt(value):
        return "-" if value is None else f"{value:,.1f}"

    def ratio(a, b):
        return "-" if a is None or b is None else f"{a / b:.2f}x"

    for arch, px in cells:
        f32 = jcxr.get((arch, px, "float32"), {}).get("images_per_s")
        b16 = jcxr.get((arch, px, "bfloat16"), {}).get("images_per_s")
        e32 = by.get((arch, px, "eager_fp32"))
        eamp = by.get((arch, px, "eager_amp"))
        camp = by.get((arch, px, "compile_amp"))
        lines.append(
            f"| {arch} | {px} | {fmt(f32)} | {fmt(e32)} | {ratio(f32, e32)} | {fmt(b16)} | "
            f"{fmt(eamp)} | {ratio(b16, eamp)} | {fmt(camp)} | {ratio(b16, camp)} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="resnet34,densenet121,efficientnet_b0")
    parser.add_argument("--resolutions", default="64,224,320,512")
    parser.add_argument("--effective-batch", type=int, default=32)
    parser.add_argument("--microbatch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--modes", default="eager_fp32,eager_amp,compile_amp")
    parser.add_argument("--compare", type=Path, help="bench/train.py --json output")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", action="store_true", help="time by op category (JSON)")
    args = parser.parse_args()
    if args.profile:
        for arch in args.archs.split(","):
            for resolution in map(int, args.resolutions.split(",")):
                row = profile(arch, resolution, args.effective_batch, args.microbatch, args.steps)
                print(json.dumps(row), flush=True)
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(describe(), f"| torch {torch.__version__} torchvision {torchvision.__version__} | {name}")
    jcxr_rows = []
    if args.compare:
        jcxr_rows = [json.loads(line) for line in args.compare.read_text().splitlines() if line]
    microbatches = {(r["arch"], r["resolution"]): r["microbatch"] for r in jcxr_rows}
    cells = sorted(microbatches) or [
        (a, int(r)) for a in args.archs.split(",") for r in args.resolutions.split(",")
    ]
    rows = []
    print("| arch | px | mode | microbatch x steps | first step (s) | images/s | peak (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for arch, resolution in cells:
        microbatch = microbatches.get((arch, resolution), args.microbatch)
        for mode in args.modes.split(","):
            row = measure(
                arch, resolution, args.effective_batch, microbatch, mode, args.steps, device
            )
            rows.append(row)
            peak = f"{row['peak_memory_mib']:,.0f}" if "peak_memory_mib" in row else "-"
            print(
                f"| {arch} | {resolution} | {mode} | {microbatch} x "
                f"{args.effective_batch // microbatch} | {row['compile_s']:.1f} | "
                f"{row['images_per_s']:,.1f} | {peak} |",
                flush=True,
            )
            append_jsonl(args.json, row)
    if jcxr_rows:
        print()
        print(compare(jcxr_rows, rows))


if __name__ == "__main__":
    main()
