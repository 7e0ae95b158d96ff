"""Demo: the whole pipeline on built-in phantoms, on a laptop CPU in a few minutes.

Nodule (8-12 px at the native 512 px: sub-pixel at 32 px) against Mass (48-72 px: visible at
every size), each at three resolutions, with a small ResNet. The expected result: Nodule AUC
rises with resolution, the lowest-vs-highest difference significant by DeLong's test, while
Mass is already detected at the lowest resolution. Measured so far (docs/benchmarks.md): Mass
does; the Nodule effect is not yet robust at this training budget (it flips between runs).
"""

from jcxr.train.config import defaults


def get_config():
    c = defaults()
    c.name = "demo"
    c.data.source = "phantom"
    c.data.prepare_if_missing = True
    c.data.phantom_images = 1600
    c.sweep.labels = ("Nodule", "Mass")
    c.sweep.resolutions = (32, 64, 128)
    c.sweep.archs = ("resnet_tiny",)
    c.sweep.seeds = (0,)
    c.model.head = "concat_pool"  # seed 001 and 004: max-pooling keeps small focal findings
    c.optim.recipe = "adam"
    c.optim.learning_rate = 1e-3
    c.train.epochs = 7
    c.train.effective_batch_size = 32
    c.train.microbatch_size = 32
    c.train.max_rotation = 5.0
    c.eval.reference_resolution = 128
    c.logging.wandb = "offline"
    return c
