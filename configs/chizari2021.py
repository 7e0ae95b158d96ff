"""Chizari 2021: CheXpert, 5 tasks x 5 resolutions x model scaling, 5 seeds.

    python -m jcxr.data prepare --source chexpert --root /data/CheXpert-v1.0 --resize lanczos \\
        --resolutions 160,240,320,400,480,224,260,300,380,456 --out /data/chexpert-shards
    python -m jcxr.train --config configs/chizari2021.py --config.data.shards=/data/chexpert-shards

Uncertainty: the `chizari2021` preset (U-Ones Atelectasis, Edema, Pleural Effusion; U-Zeros
Cardiomegaly; U-Ignore Consolidation). Head: concat-pool, dropout 0.6. One epoch with the body
frozen (head max rate 5e-3), then 5 epochs one-cycle at body 2.5e-5 / head 2.5e-3; Adam (0.9,
0.99), weight decay 0.1; batch 40 studies; best epoch by validation AUC; no TTA. Each
EfficientNet runs at its own resolution. The unit is the study, in training as in evaluation
("one element of a batch contains one study, which can consist of up to 3 x-ray images"):
`train.unit = "study"` puts a study's views (up to 3, padding masked) through the network and
scores it by the max over them, and BatchNorm normalises over groups of 40 studies' views
whatever the microbatch. The test set is CheXpert's official validation set (valid.csv), and
train.csv splits 90/10 by patient into training and validation.
"""

from jcxr.train.config import defaults

EFFICIENTNET_RESOLUTION = {
    "efficientnet_b0": 224,
    "efficientnet_b1": 240,
    "efficientnet_b3": 300,
    "efficientnet_b4": 380,
    "efficientnet_b5": 456,
}


def get_config():
    c = defaults()
    c.name = "chizari2021"
    c.data.source = "chexpert"
    c.data.resize = "lanczos"
    c.data.test_split = "official"
    c.data.train_fraction = 0.9
    c.data.val_fraction = 0.1
    c.sweep.labels = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
    c.sweep.resolutions = (160, 240, 320, 400, 480)
    c.sweep.archs = (
        "resnet50",
        "resnet152",
        "densenet121",
        "densenet161",
        *EFFICIENTNET_RESOLUTION,
    )
    c.sweep.only = tuple(f"{a}:{r}" for a, r in EFFICIENTNET_RESOLUTION.items())
    c.sweep.seeds = (0, 1, 2, 3, 4)
    c.model.head = "concat_pool"
    c.model.dropout = 0.6
    c.optim.recipe = "one_cycle"
    c.optim.freeze_epochs = 1
    c.optim.frozen_learning_rate = 5e-3
    c.optim.body_learning_rate = 2.5e-5
    c.optim.head_learning_rate = 2.5e-3
    c.optim.b1, c.optim.b2 = 0.9, 0.99
    c.optim.weight_decay = 0.1
    c.train.epochs = 6
    c.train.effective_batch_size = 40
    c.train.microbatch_size = 40
    c.train.unit = "study"  # batches of studies: the max over a study's views, in training too
    c.train.views = 3
    c.model.batchnorm_group = 40  # BatchNorm over the thesis's batch, whatever the microbatch
    c.train.loss = "bce"
    c.train.augment = False
    c.eval.tta_views = 0
    c.eval.compare_on = "test"
    c.eval.study_level = True
    c.eval.reference_resolution = 320
    return c
