"""Demo: the whole pipeline on built-in phantoms, on a laptop CPU in a few minutes.

Nodule (8-12 px at the native 512 px: sub-pixel at 32 px) against Mass (48-72 px: visible at
every size), each at three resolutions, with a small ResNet. The result it shows (measured in
docs/benchmarks.md over three phantom and training seeds, and again as the code changed):
Nodule test AUC 0.46-0.58 at 32 and 64 px and 0.96-1.00 at 128 px, DeLong p < 1e-19 for 128
against 32 px, while Mass is already detected at 32 px (AUC 0.77-0.91).

Augmentation is left-right flips only, which move pixels exactly. Rotation, zoom and sub-pixel
shifts resample the image bilinearly, which blurs a 2-3 px nodule into the faint vessels around
it: with Sabottke & Spieler 2020's geometric augmentation the 128 px nodule cell stayed at
chance for 7 epochs.
Brightness and contrast jitter slowed it too (validation AUC 0.85 at epoch 6 against 0.97 at
epoch 3 without, on one seed). Measured in docs/benchmarks.md.

At the end, where each network looks: Grad-CAM on 40 boxed test images per cell, at the
ResNet's first stage (stride 4: 32 x 32 at 128 px). Its last stage is 4 x 4 at 128 px and its
maximum never fell inside a mass box (0 of 35 on an AMD EPYC, 1 of 35 on an Intel Xeon; a
random map hits 1.6%). Which stage does point at the mass changes with the processor's
rounding: the first, 13 of 35, on the AMD EPYC; on the Intel Xeon 0 of 35 there and 5 of 35 at
the third. Read the demo's maps as an illustration, not a result: docs/benchmarks.md.
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
    # Sabottke & Spieler 2020 and Chizari 2021: max-pooling keeps small focal findings
    c.model.head = "concat_pool"
    c.optim.recipe = "adam"
    c.optim.learning_rate = 1e-3
    c.train.epochs = 7
    c.train.effective_batch_size = 32
    c.train.microbatch_size = 32
    c.model.batchnorm_group = 8  # four BatchNorm groups per microbatch, at every resolution
    c.train.max_rotation = 0.0  # flips only: see above
    c.train.max_scale = 0.0
    c.train.max_translate = 0.0
    c.train.max_brightness = 0.0
    c.train.max_contrast = 0.0
    c.eval.reference_resolution = 128
    c.eval.localise = True
    c.eval.localise_layer = "layer1"  # see above
    c.eval.localise_images = 40
    c.logging.wandb = "offline"
    return c
