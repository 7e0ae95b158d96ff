"""The main job: Sabottke & Spieler 2020's grid (8 labels x 9 resolutions, ResNet34, 3 epochs) on
NIH, with a constant effective batch at every resolution (Chizari 2021's critique of a batch that
shrinks with resolution): 32 images per update, accumulated over microbatches where memory
needs it.

    python -m jcxr.data prepare --source nih --root /data/nih --out /data/nih-shards \\
        --resolutions 32,64,128,224,256,320,448,512,600
    python -m jcxr.train --config configs/sweep.py --config.data.shards=/data/nih-shards \\
        --config.model.pretrained=weights/resnet34
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "sabottke2020", Path(__file__).with_name("sabottke2020.py")
)
_sabottke = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sabottke)


def get_config():
    c = _sabottke.get_config("A")
    c.name = "sweep"
    c.train.effective_batch_size = 32
    # 4 accumulated microbatches; raise it where memory allows (or "auto"): BatchNorm keeps
    # normalising groups of Sabottke & Spieler 2020's 8 images (model.batchnorm_group)
    c.train.microbatch_size = 8
    return c
