"""python -m jcxr.models.port ARCH --weights FILE|torchvision --out DIR

Converts torchvision ImageNet weights into an orbax checkpoint of the jcxr model's state plus a
JSON record (architecture, source SHA-256, tensors converted). Pass DIR as ``pretrained=`` to
``jcxr.models.create`` on machines without torch. The checkpoint is written under a temporary
name and renamed when complete, so an interrupted port never leaves a DIR that looks finished.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from flax import nnx

from jcxr import _cli, models
from jcxr._io import file_sha256
from jcxr.models.weights import (
    PORT_CHECKPOINT,
    PORT_RECORD,
    read_state_dict,
)


def fetch_torchvision_weights(arch: str) -> Path:
    """Download torchvision's own ImageNet weights for ``arch`` (needs torchvision + network)."""
    try:
        import torch
        import torchvision
    except ImportError:
        raise ValueError(
            "--weights torchvision needs torch and torchvision installed to download the "
            "weights; otherwise download them elsewhere and pass --weights FILE"
        ) from None
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if target.is_file():
        return target
    try:
        torch.hub.download_url_to_file(weights.url, str(target), progress=True)
    except OSError as error:
        raise ValueError(
            f"could not download {weights.url} ({error}). There is no network here: download "
            f"that file on a machine with internet access and pass --weights /path/to/"
            f"{target.name}"
        ) from None
    return target


def port(arch: str, weights: str, out: Path) -> dict:
    """Convert ``weights`` for ``arch`` into ``out``; returns the JSON record written."""
    import orbax.checkpoint as ocp

    source = fetch_torchvision_weights(arch) if weights == "torchvision" else Path(weights)
    state_dict = read_state_dict(source)
    model = models.from_torchvision(arch, state_dict)
    record = {
        "arch": arch,
        "torch_head": models.torch_head(arch),
        "source": str(source),
        "source_sha256": file_sha256(source) if source.is_file() else None,
        "tensors_converted": len(state_dict),
        "params": sum(
            v.get_value().size for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
        ),
        "jcxr_version": __import__("jcxr").__version__,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat)).to_pure_dict()
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save((staging / PORT_CHECKPOINT).absolute(), state)
        checkpointer.wait_until_finished()
        (staging / PORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record


def main(argv: list[str] | None = None) -> int:
    """The command line; a user error is one line on stderr and exit 2 (``--debug``: the
    traceback)."""
    return _cli.run(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jcxr.models.port", description=__doc__.splitlines()[2].strip()
    )
    parser.add_argument("arch", help=f"one of: {', '.join(models.list_archs())}")
    parser.add_argument(
        "--weights",
        required=True,
        help="torchvision checkpoint (.pth, .safetensors, .npz) or 'torchvision' to download",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    args = parser.parse_args(argv)
    if args.arch not in models.list_archs():
        parser.error(f"unknown architecture {args.arch!r}; choose one of {models.list_archs()}")
    record = port(args.arch, args.weights, args.out)
    print(f"ported {record['tensors_converted']} tensors of {args.arch} to {args.out}")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
