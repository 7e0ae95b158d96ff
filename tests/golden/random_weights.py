"""Deterministic random torchvision state dicts and inputs, numpy only.

Shared by the golden tests and ``generate.py`` (which runs torchvision on the same tensors), so
neither side needs the other's framework. Scales keep activations of O(1) through 150+ layers.
"""

import json
from pathlib import Path

import numpy as np

MANIFESTS = Path(__file__).parent / "manifests"
FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN_ARCHS = ("resnet34", "resnet50", "densenet121", "efficientnet_b0", "efficientnet_b5",
                "mobilenet_v2", "mobilenet_v3_large", "inception_v3", "xception")  # fmt: skip
# every other torchvision architecture jcxr offers: eval logits at EVAL_ONLY_RESOLUTION only, so
# CI checks each numerically without compiling the largest networks at 224 px and in training
EVAL_ONLY_ARCHS = ("resnet18", "resnet101", "resnet152", "densenet161", "densenet169",
                   "densenet201", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
                   "efficientnet_b4", "efficientnet_b6", "efficientnet_b7")  # fmt: skip
EVAL_ONLY_RESOLUTION = 65  # odd feature maps at every stride: 33, 17, 9, 5, 3
RESOLUTIONS = (224, 97)  # 97 px gives odd feature maps at every stride: 49, 25, 13, 7, 4
NATIVE = {"inception_v3": 299, "xception": 299}  # the rest: 224 px
TIMM = {"xception": "legacy_xception"}  # jcxr name -> timm name, for weights not in torchvision
TRAIN_RESOLUTION = 97
# InceptionV3 reaches 1 x 1 maps at 97 px: BatchNorm over a batch of 2 single pixels is then a
# sign function (x / sqrt(x^2 + eps), slope 1 / sqrt(eps) = 32 near 0), and two such stacks make
# float32 rounding differences of 1e-6 into logit differences of 5e-3. At 139 px its last maps
# are 3 x 3.
TRAIN_RESOLUTIONS = {"inception_v3": 139}
BATCH = 2
# fixtures/cam.npz (generate_cam.py): pytorch-grad-cam's maps at these torchvision layers
CAM_RESOLUTION = 129  # 5 x 5 at stride 32, 9 x 9 at stride 16
CAM_CASES = {
    "resnet34": ("layer4", "layer3"),
    "densenet121": ("features.norm5", "features.denseblock3"),
    "efficientnet_b0": ("features.8", "features.5"),
}
SEED = 20201122


def resolutions(arch: str) -> tuple[int, int]:
    """The golden fixture's eval resolutions: the native size, then 97 px."""
    return NATIVE.get(arch, RESOLUTIONS[0]), RESOLUTIONS[1]


def train_resolution(arch: str) -> int:
    return TRAIN_RESOLUTIONS.get(arch, TRAIN_RESOLUTION)


def manifest(arch: str) -> dict:
    """``{"arch", "torchvision", "num_params", "tensors": [[key, shape, dtype], ...]}``."""
    return json.loads((MANIFESTS / f"{arch}.json").read_text())


def random_state_dict(arch: str, seed: int = SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, sum(map(ord, arch))])
    out = {}
    for key, shape, dtype in manifest(arch)["tensors"]:
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            out[key] = np.zeros(shape, np.int64)
        elif key.endswith("running_mean"):
            out[key] = rng.normal(0.0, 0.1, shape).astype(np.float32)
        elif key.endswith("running_var"):
            out[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif key.endswith("bias"):
            out[key] = rng.normal(0.0, 0.05, shape).astype(np.float32)
        elif len(shape) == 1:  # BatchNorm weight
            out[key] = rng.uniform(0.4, 1.0, shape).astype(np.float32)
        else:  # conv (O, I, kh, kw) or linear (out, in)
            fan_in = int(np.prod(shape[1:]))
            out[key] = rng.normal(0.0, np.sqrt(1.0 / fan_in), shape).astype(np.float32)
        assert dtype in ("float32", "int64"), (key, dtype)
    return out


def random_input(resolution: int, seed: int = SEED) -> np.ndarray:
    """``[B, 3, H, W]`` float32 (torch layout), like ImageNet-normalised pixels."""
    rng = np.random.default_rng([seed, resolution])
    return rng.normal(0.0, 1.0, (BATCH, 3, resolution, resolution)).astype(np.float32)
