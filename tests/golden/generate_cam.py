"""Regenerate ``fixtures/cam.npz``: pytorch-grad-cam's maps on torchvision models, the reference
``tests/test_explain.py`` compares ``jcxr.explain`` with.

Needs torch, torchvision and pytorch-grad-cam (none of them jcxr's dependencies): on the
project's CPU machine,

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 torchvision==0.29.1 \\
        numpy grad-cam==1.5.7 opencv-python-headless
    /tmp/tv/bin/python tests/golden/generate_cam.py

Each model carries the golden tests' random weights (``random_weights.py``) and sees their
129 px input (two images); the logit mapped is each image's largest. For every (architecture,
layer, method) in ``CAM_CASES`` (torchvision module names, as ``jcxr.explain.layers`` names
them) it stores the map before scaling (``.../raw``: ReLU of the weighted activations, at
the layer's size) and pytorch-grad-cam's output (``.../scaled``: min-max normalised per image,
resized to 129 x 129 by OpenCV's bilinear resize, min-max again); for resnet34, guided
backpropagation of the first image.
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUModel
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

sys.path.insert(0, str(Path(__file__).parent))
from random_weights import CAM_CASES as CASES
from random_weights import CAM_RESOLUTION as RESOLUTION
from random_weights import FIXTURES, random_input, random_state_dict

METHODS = {"grad_cam": GradCAM, "grad_cam_plus_plus": GradCAMPlusPlus}


def model_of(arch: str):
    model = torchvision.models.get_model(arch, weights=None)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in random_state_dict(arch).items()})
    return model.eval()


def maps(arch: str, out: dict) -> None:
    x = torch.from_numpy(random_input(RESOLUTION))
    with torch.no_grad():  # each image's top logit: a map that is not all zero
        top = model_of(arch)(x).argmax(1).tolist()
    out[f"{arch}/targets"] = np.asarray(top)
    targets = [ClassifierOutputTarget(k) for k in top]
    for layer in CASES[arch]:
        for name, method in METHODS.items():
            model = model_of(arch)
            module = model.get_submodule(layer)
            with method(model=model, target_layers=[module]) as cam:
                scaled = cam(input_tensor=x, targets=targets)
                acts = cam.activations_and_grads.activations[0].numpy()
                grads = cam.activations_and_grads.gradients[0].numpy()
                raw = np.maximum(cam.get_cam_image(x, module, targets, acts, grads, False), 0)
            out[f"{arch}/{layer}/{name}/raw"] = raw.astype(np.float32)
            out[f"{arch}/{layer}/{name}/scaled"] = scaled.astype(np.float32)
            print(f"{arch} {layer} {name}: raw {raw.shape}, max {raw.max():.4g}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    out = {}
    for arch in CASES:
        maps(arch, out)
    guided = GuidedBackpropReLUModel(model_of("resnet34"), device="cpu")
    first = int(out["resnet34/targets"][0])
    out["resnet34/guided"] = guided(torch.from_numpy(random_input(RESOLUTION)), first)
    np.savez_compressed(FIXTURES / "cam.npz", **out)
    print(f"written: {FIXTURES / 'cam.npz'}")
