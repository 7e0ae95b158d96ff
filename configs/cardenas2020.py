"""Cardona Cardenas et al. 2020: cardiomegaly, PadChest train, OpenI external test.

Prepare the paper's PadChest cohort (PA, radiologist-labelled, no devices, cardiomegaly against
normal; docs/methods.md compares its counts with the paper's) once:

    python -m jcxr.data prepare --source padchest --preset cardenas2020 --root PADCHEST \
        --resolutions 224 --out SHARDS [--crop-to-lungs MASKS]

and OpenI's external set (every PA image, cardiomegaly against normal) at the same size:

    python -m jcxr.data prepare --source openi --preset cardenas2020 --root OPENI \
        --resolutions 224 --out OPENI_SHARDS

then run with ``--config.data.shards=SHARDS --config.eval.external=OPENI_SHARDS``: every cell
is scored on its PadChest test split and on OpenI, the two AUCs compared by unpaired DeLong.

The recipe: the paper's five architectures, Xception (timm's legacy_xception: the Keras
weights), InceptionV3, MobileNet v2 (the paper's MobileNet is v1, which torchvision does not
ship; mobilenet_v3_large is the other stand-in), EfficientNet-B2 and DenseNet121; a 3-layer MLP
head with dropout 0.3, RMSprop at 1e-3 halved after 5 epochs without validation-loss
improvement, 30 epochs, batch 16, 224 px, split 75:19:6; rotation, shift, shear, scale and
flip applied to the cardiomegaly images only (the paper gives no ranges: these are jcxr's
defaults and a 10 degree shear). Two arms, class weights 75/25 and 50/50 (WORKDIR/weights_75_25
and WORKDIR/weights_50_50, compared model by model in WORKDIR/arms.html). Within an arm the
architectures are compared on the same test images by paired DeLong (report: "Between
architectures").
"""

from jcxr.train.config import defaults


def get_config():
    c = defaults()
    c.name = "cardenas2020"
    c.data.source = "padchest"
    c.data.train_fraction = 0.75
    c.data.val_fraction = 0.19
    c.sweep.labels = ("Cardiomegaly",)
    c.sweep.resolutions = (224,)
    c.sweep.archs = ("xception", "inception_v3", "mobilenet_v2", "efficientnet_b2", "densenet121")
    c.model.head = "mlp"
    c.model.dropout = 0.3
    c.optim.recipe = "rmsprop_plateau"
    c.optim.learning_rate = 1e-3
    c.optim.plateau_factor = 0.5
    c.optim.plateau_patience = 5
    c.train.epochs = 30
    c.train.effective_batch_size = 16
    c.train.microbatch_size = 16
    c.model.batchnorm_group = 16  # BatchNorm over the study's batch, whatever the microbatch
    c.train.loss = "class_weights"
    c.train.class_weights = (0.25, 0.75)
    c.sweep.arms = ("weights_75_25: train.class_weights=(0.25, 0.75)",
                    "weights_50_50: train.class_weights=(0.5, 0.5)")  # fmt: skip
    c.train.augment_positives_only = True
    c.train.max_shear = 10.0
    c.train.max_brightness = 0.0  # the paper lists geometric augmentation only
    c.train.max_contrast = 0.0
    return c
