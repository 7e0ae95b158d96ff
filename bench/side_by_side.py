"""jcxr's train step and PyTorch's, side by side in one command, with the ratio table.

    python bench/side_by_side.py [--archs resnet34,densenet121,efficientnet_b0]
        [--resolutions 64,128] [--effective-batch 32] [--steps 5]
        [--modes eager_fp32] [--dtypes float32] [--torch-python /path/to/python-with-torch]

Runs ``bench/train.py`` (no augmentation: the same work as the reference; ``--dtypes
float32,bfloat16`` to set jcxr's bf16 beside ``--modes eager_fp32,eager_amp``) and then
``bench/torch_reference.py --compare`` on its output, one right after the other on the same
machine, and prints both tables and the jcxr / PyTorch ratios. torch is not a jcxr dependency:
``--torch-python`` names an interpreter that has torch and torchvision (default: this one).
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="resnet34,densenet121,efficientnet_b0")
    parser.add_argument("--resolutions", default="64,128")
    parser.add_argument("--effective-batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--modes", default="eager_fp32")
    parser.add_argument("--dtypes", default="float32")
    parser.add_argument("--torch-python", default=sys.executable)
    args = parser.parse_args()
    rows = Path(tempfile.mkdtemp(prefix="jcxr-side-by-side-")) / "jcxr.jsonl"
    common = ["--archs", args.archs, "--resolutions", args.resolutions, "--effective-batch",
              str(args.effective_batch), "--steps", str(args.steps)]  # fmt: skip
    jcxr = [sys.executable, str(HERE / "train.py"), *common, "--dtypes", args.dtypes,
            "--microbatch", str(args.effective_batch), "--no-augment",
            "--json", str(rows)]  # fmt: skip
    torch = [args.torch_python, str(HERE / "torch_reference.py"), *common, "--modes", args.modes,
             "--compare", str(rows)]  # fmt: skip
    print(f"$ {' '.join(jcxr)}", flush=True)
    subprocess.run(jcxr, check=True)
    print(f"\n$ {' '.join(torch)}", flush=True)
    subprocess.run(torch, check=True)


if __name__ == "__main__":
    main()
