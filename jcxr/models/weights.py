"""torchvision state dicts <-> jcxr models.

Every source (an in-memory state dict, ``.pth``, ``.safetensors``, ``.npz`` or a directory written
by ``python -m jcxr.models.port``) is first read into one form: ``{torchvision key: numpy array}``
in torch layout. :func:`load_into` then checks it against the model, key by key and shape by
shape, and copies it in. A model variable's torchvision key comes from its NNX path (see
:func:`torch_key`), so no per-architecture tables are needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

PORT_RECORD = "port.json"
PORT_CHECKPOINT = "checkpoint"
_LEAF_TO_TORCH = {
    "kernel": "weight",
    "scale": "weight",
    "bias": "bias",
    "mean": "running_mean",
    "var": "running_var",
}
# Old torchvision DenseNet checkpoints name layers "norm.1", "conv.2", ...
_LEGACY_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


class WeightsMismatchError(ValueError):
    """The weights do not fit the architecture: missing, unexpected or wrongly shaped tensors."""


def torch_key(path: tuple, torch_head: str) -> str:
    """torchvision key of the NNX variable at ``path`` (``Sequential.layers`` segments dropped)."""
    parts = [str(p) for p in path if p != "layers"]
    leaf = _LEAF_TO_TORCH[parts[-1]]
    if parts[0] == "head":  # LinearHead's "dense" is the classifier itself
        return ".".join([torch_head, *(p for p in parts[1:-1] if p != "dense"), leaf])
    return ".".join([*parts[:-1], leaf])


def torch_to_flax(array: np.ndarray, leaf: str) -> np.ndarray:
    """torch layout -> flax layout: conv OIHW -> HWIO, linear (out, in) -> (in, out)."""
    if leaf == "kernel" and array.ndim == 4:
        return array.transpose(2, 3, 1, 0)
    if leaf == "kernel" and array.ndim == 2:
        return array.T
    return array


def flax_to_torch(array: np.ndarray, leaf: str) -> np.ndarray:
    if leaf == "kernel" and array.ndim == 4:
        return array.transpose(3, 2, 0, 1)
    if leaf == "kernel" and array.ndim == 2:
        return array.T
    return array


def model_variables(model: nnx.Module, torch_head: str, *, include_head: bool):
    """``{torchvision key: (leaf name, nnx.Variable)}`` for parameters and batch statistics."""
    state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
    out = {}
    for path, variable in nnx.to_flat_state(state):
        if path[0] == "head" and not include_head:
            continue
        out[torch_key(path, torch_head)] = (str(path[-1]), variable)
    return out


def normalise_state_dict(state_dict: Mapping) -> dict[str, np.ndarray]:
    """Plain ``{key: float32 numpy array}``: torch tensors converted, legacy DenseNet keys renamed,
    ``num_batches_tracked`` counters dropped, a ``{"state_dict": ...}`` wrapper unwrapped."""
    for wrapper in ("state_dict", "model"):
        if wrapper in state_dict and isinstance(state_dict[wrapper], Mapping):
            state_dict = state_dict[wrapper]
    out = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().float().numpy()
        match = _LEGACY_DENSENET.match(key)
        key = match.group(1) + match.group(2) if match else key
        out[key.removeprefix("module.")] = np.asarray(value, dtype=np.float32)
    return out


def load_into(
    model: nnx.Module,
    state_dict: Mapping,
    torch_head: str,
    *,
    include_head: bool,
    ignore: tuple[str, ...] = (),
) -> dict:
    """Copy a torchvision state dict into ``model``; every tensor must fit exactly.

    With ``include_head=False`` the torchvision classifier's tensors are skipped and the model's
    own (fresh) head is kept; tensors under an ``ignore`` prefix (InceptionV3's auxiliary
    classifier, which jcxr does not build) are skipped too. Returns ``{"converted": int,
    "skipped": [keys]}``.
    Raises :class:`WeightsMismatchError` listing every missing, unexpected and misshapen tensor.
    """
    tensors = normalise_state_dict(state_dict)
    targets = model_variables(model, torch_head, include_head=include_head)
    head_prefix = torch_head + "."
    skipped = sorted(k for k in tensors if (not include_head and k.startswith(head_prefix))
                     or k.startswith(ignore))  # fmt: skip
    offered = {k: v for k, v in tensors.items() if k not in skipped}
    missing = sorted(set(targets) - set(offered))
    unexpected = sorted(set(offered) - set(targets))
    misshapen = []
    for key in sorted(set(offered) & set(targets)):
        leaf, variable = targets[key]
        expected = flax_to_torch(np.empty(variable.get_value().shape, np.uint8), leaf).shape
        if offered[key].shape != expected:
            misshapen.append(f"{key}: found {offered[key].shape}, expected {expected}")
    if missing or unexpected or misshapen:
        raise WeightsMismatchError(_mismatch_message(missing, unexpected, misshapen))
    for key in offered:
        leaf, variable = targets[key]
        variable.set_value(jnp.asarray(torch_to_flax(offered[key], leaf), jnp.float32))
    return {"converted": len(offered), "skipped": skipped}


def _mismatch_message(missing, unexpected, misshapen) -> str:
    def listed(title, items):
        shown = items[:20]
        more = f"\n    ... and {len(items) - 20} more" if len(items) > 20 else ""
        return f"  {title} ({len(items)}):\n" + "\n".join(f"    {i}" for i in shown) + more

    parts = ["weights do not fit the architecture:"]
    if missing:
        parts.append(listed("missing from the weights", missing))
    if unexpected:
        parts.append(listed("unexpected in the weights", unexpected))
    if misshapen:
        parts.append(listed("wrong shape", misshapen))
    return "\n".join(parts)


def read_state_dict(source) -> dict[str, np.ndarray]:
    """Read torchvision weights from a mapping or a file/directory, as ``{key: numpy array}``.

    Files: ``.pth``/``.pt`` (needs torch), ``.safetensors``, ``.npz``, or a directory written by
    ``python -m jcxr.models.port``.
    """
    if isinstance(source, Mapping):
        return normalise_state_dict(source)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"weights {path}: no such file or directory")
    if path.is_dir():
        return _read_ported(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        return normalise_state_dict(load_file(str(path)))
    if suffix == ".npz":
        with np.load(path) as archive:
            return normalise_state_dict({k: archive[k] for k in archive.files})
    if suffix in (".pth", ".pt"):
        try:
            import torch
        except ImportError:
            raise ValueError(
                f"weights {path}: reading a .pth checkpoint needs torch (pip install torch). "
                "Without torch, convert it once where torch exists with `python -m "
                "jcxr.models.port ARCH --weights FILE --out DIR` and pass DIR, or save it as "
                ".safetensors or .npz"
            ) from None
        return normalise_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    raise ValueError(
        f"weights {path}: unknown format {suffix!r}; expected .pth, .pt, .safetensors, .npz or a "
        "directory written by `python -m jcxr.models.port`"
    )


def _read_ported(directory: Path) -> dict[str, np.ndarray]:
    """Weights saved by ``port``: the model's NNX state (flax layout) in an orbax checkpoint."""
    import orbax.checkpoint as ocp

    record_path = directory / PORT_RECORD
    if not record_path.is_file():
        raise ValueError(
            f"weights {directory}: a directory of weights must come from `python -m "
            f"jcxr.models.port` and hold {PORT_RECORD}; it does not"
        )
    record = json.loads(record_path.read_text())
    state = ocp.StandardCheckpointer().restore((directory / PORT_CHECKPOINT).absolute())
    out = {}
    for path, value in _flatten(state):
        out[torch_key(path, record["torch_head"])] = flax_to_torch(np.asarray(value), path[-1])
    return out


def _flatten(tree, prefix=()):
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _flatten(value, (*prefix, str(key)))
    else:
        yield prefix, tree
