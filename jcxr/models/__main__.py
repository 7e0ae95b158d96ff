"""python -m jcxr.models {list,summary}: what architectures exist and what they cost."""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
from flax import nnx

from jcxr import _cli, models


def summarise(arch: str, resolution: int, num_outputs: int = 1000) -> dict:
    """Parameters, FLOPs per image (XLA's count: a multiply-add is 2) and output shape.

    Nothing is initialised or compiled: the model is built abstractly and only lowered.
    """
    abstract = nnx.eval_shape(lambda: models.create(arch, num_outputs=num_outputs, head="imagenet"))
    abstract.eval()
    graphdef, state = nnx.split(abstract)
    params = sum(v.get_value().size for _, v in nnx.to_flat_state(nnx.state(abstract, nnx.Param)))
    image = jax.ShapeDtypeStruct((1, resolution, resolution, 3), jnp.float32)

    def forward(state, x):
        return nnx.merge(graphdef, state)(x)

    lowered = jax.jit(forward).lower(state, image)
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    out = jax.eval_shape(forward, state, image)
    return {
        "arch": arch,
        "resolution": resolution,
        "params": int(params),
        "flops": float(cost["flops"]),
        "output_shape": tuple(out.shape),
    }


def main(argv: list[str] | None = None) -> int:
    """The command line; a user error is one line on stderr and exit 2 (``--debug``: the
    traceback)."""
    return _cli.run(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m jcxr.models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the architectures")
    summary = sub.add_parser("summary", help="parameters, FLOPs per image and output shape")
    summary.add_argument("arch", help="architecture name (see `list`)")
    summary.add_argument("--resolution", type=int, default=224, help="square input size, px")
    summary.add_argument("--num-outputs", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(models.list_archs()))
        return 0
    if args.arch not in models.list_archs():
        parser.error(f"unknown architecture {args.arch!r}; choose one of {models.list_archs()}")
    if not 32 <= args.resolution <= 2048:
        parser.error(f"--resolution must be between 32 and 2048 px; got {args.resolution}")
    info = summarise(args.arch, args.resolution, args.num_outputs)
    print(f"architecture   {info['arch']}")
    print(f"input          [1, {args.resolution}, {args.resolution}, 3] NHWC")
    print(f"parameters     {info['params']:,}")
    print(f"FLOPs / image  {info['flops'] / 1e9:.3f} G ({info['flops'] / 2e9:.3f} G multiply-adds)")
    print(f"output shape   {list(info['output_shape'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
