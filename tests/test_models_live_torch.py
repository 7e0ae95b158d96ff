"""Live comparison with torchvision, for every architecture, where torch is installed.

torch is not a jcxr dependency, so this module runs only where torch and torchvision import
(the golden tests in test_models.py always run). Run it with:
``pip install torch torchvision && pytest tests/test_models_live_torch.py``.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jcxr import models

torch = pytest.importorskip("torch", reason="live torchvision comparison needs torch installed")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("timm", reason="Xception's reference is timm's legacy_xception")

RESOLUTION = 67  # odd feature maps at every stride: 34, 17, 9, 5, 3


@nnx.jit
def forward(model, x):
    return model(x)


@pytest.mark.parametrize("arch", models.list_archs(torchvision_only=True))
def test_every_architecture_equals_torchvision(arch):
    from tests.golden.generate import reference_model  # InceptionV3 and Xception as jcxr's

    torch.manual_seed(0)
    reference = reference_model(arch).eval()
    with torch.no_grad():  # non-trivial running statistics, as after training
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.4, 1.0)
    model = models.from_torchvision(arch, reference.state_dict())
    model.eval()
    size = max(RESOLUTION, models.min_size(arch))
    x = np.random.default_rng(0).normal(size=(2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    got = np.asarray(forward(model, jnp.asarray(x.transpose(0, 2, 3, 1))))
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)
