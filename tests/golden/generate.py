"""Regenerate the committed golden manifests and fixtures with torchvision (and timm) itself.

Needs torch, torchvision and timm (not jcxr's dependencies): on the project's CPU machine,

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 torchvision==0.29.1 \
        timm==1.0.31 numpy
    /tmp/tv/bin/python tests/golden/generate.py

writes ``manifests/ARCH.json`` (every torchvision key, shape and dtype, the parameter count and
the ImageNet weights URL) for every architecture jcxr has, and ``fixtures/ARCH.npz``: for the
golden architectures eval-mode logits at each resolution, train-mode logits (stochastic depth
and dropout off) and every running statistic after that one train-mode forward pass; for every
other architecture eval-mode logits at 65 px. ``generate.py ARCH ...`` redoes only those.
The reference models are built as jcxr builds them (:func:`reference_model`): InceptionV3 with
its input conversion and auxiliary head, Xception as timm's ``legacy_xception`` fed the
conversion to mean/std 0.5 that jcxr's model does inside.
"""

import json
import sys
from pathlib import Path

import numpy as np
import timm
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).parent))
from random_weights import (
    EVAL_ONLY_ARCHS,
    EVAL_ONLY_RESOLUTION,
    FIXTURES,
    GOLDEN_ARCHS,
    MANIFESTS,
    TIMM,
    random_input,
    random_state_dict,
    resolutions,
    train_resolution,
)

ARCHS = [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
ARCHS += [f"densenet{d}" for d in (121, 161, 169, 201)]
ARCHS += [f"efficientnet_b{i}" for i in range(8)]
ARCHS += ["mobilenet_v2", "mobilenet_v3_large", "inception_v3", "xception"]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def reference_model(arch: str) -> torch.nn.Module:
    """The torchvision (or timm) model jcxr's ``arch`` must equal, without weights."""
    if arch in TIMM:
        model = timm.create_model(TIMM[arch], pretrained=False)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # jcxr takes ImageNet-normalised input and converts it to the weights' mean/std 0.5
        model.register_forward_pre_hook(lambda _, args: ((args[0] * std + mean - 0.5) / 0.5,))
        return model
    if arch == "inception_v3":  # as with its ImageNet weights: the input conversion on
        return torchvision.models.inception_v3(weights=None, init_weights=False,
                                               transform_input=True)  # fmt: skip
    return torchvision.models.get_model(arch, weights=None)


def write_manifest(arch: str) -> None:
    model = reference_model(arch)
    if arch in TIMM:
        version, url = f"timm {timm.__version__}", model.pretrained_cfg["url"]
    else:
        version = torchvision.__version__
        url = torchvision.models.get_model_weights(arch).DEFAULT.url
    record = {
        "arch": arch,
        "torchvision": version,
        "num_params": sum(p.numel() for p in model.parameters()),
        "weights_url": url,
        "tensors": [
            [k, list(v.shape), str(v.dtype).removeprefix("torch.")]
            for k, v in model.state_dict().items()
        ],
    }
    (MANIFESTS / f"{arch}.json").write_text(json.dumps(record, indent=0) + "\n")


def write_fixture(arch: str) -> None:
    torch.manual_seed(0)
    model = reference_model(arch)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in random_state_dict(arch).items()})
    out = {}
    model.eval()
    with torch.no_grad():
        for resolution in resolutions(arch):
            out[f"eval_{resolution}"] = model(torch.from_numpy(random_input(resolution))).numpy()
        for module in model.modules():  # train mode without randomness
            if isinstance(module, torch.nn.Dropout | torchvision.ops.StochasticDepth):
                module.p = 0.0
        if arch == "inception_v3":  # jcxr has no auxiliary head
            model.aux_logits, model.AuxLogits = False, None
        model.train()
        size = train_resolution(arch)
        out[f"train_{size}"] = model(torch.from_numpy(random_input(size))).numpy()
    for key, value in model.state_dict().items():
        if key.endswith(("running_mean", "running_var")):
            out[f"running/{key}"] = value.numpy()
    np.savez_compressed(FIXTURES / f"{arch}.npz", **out)
    native = resolutions(arch)[0]
    scale = np.abs(out[f"eval_{native}"]).max()
    print(f"{arch}: fixture written, max |logit| at {native} px = {scale:.3f}")


def write_eval_fixture(arch: str) -> None:
    """Eval-mode logits at EVAL_ONLY_RESOLUTION only (``fixtures/ARCH.npz``)."""
    torch.manual_seed(0)
    model = reference_model(arch)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in random_state_dict(arch).items()})
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(random_input(EVAL_ONLY_RESOLUTION))).numpy()
    np.savez_compressed(FIXTURES / f"{arch}.npz", **{f"eval_{EVAL_ONLY_RESOLUTION}": logits})
    print(f"{arch}: eval fixture written, max |logit| = {np.abs(logits).max():.3f}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    MANIFESTS.mkdir(exist_ok=True)
    FIXTURES.mkdir(exist_ok=True)
    for arch in ARCHS:
        write_manifest(arch)
    only = sys.argv[1:]  # optional: just these architectures
    for arch in GOLDEN_ARCHS:
        if not only or arch in only:
            write_fixture(arch)
    for arch in EVAL_ONLY_ARCHS:
        if not only or arch in only:
            write_eval_fixture(arch)
