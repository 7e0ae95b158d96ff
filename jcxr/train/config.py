"""The single description of a run: an ml_collections ConfigDict with every field defaulted.

Study configs start from :func:`defaults` (locked: a mistyped field is an error, not a new key)
and change what their study did. Units: resolutions in px, rates per optimiser step, batch
sizes in images.
"""

from __future__ import annotations

import json

import ml_collections

from jcxr import models
from jcxr.data import check_source
from jcxr.stats.noninferiority import PROCEDURES

RECIPES = ("adam", "one_cycle", "rmsprop_plateau")
LOSSES = ("weighted_bce", "class_weights", "bce")
DTYPES = ("float32", "bfloat16")
PLACEMENTS = ("auto", "data_parallel", "per_device")
CLUSTER_BY = ("auto", "patient", "study", "none")
ACCUMULATE = ("auto", "scan", "unroll")


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.name = "run"  # the sweep's name: W&B group, report title

    c.data = ml_collections.ConfigDict()
    c.data.source = "phantom"
    c.data.root = ""  # dataset root; phantoms: where to write them (default WORKDIR/phantoms)
    c.data.shards = ""  # pre-resized shards (default WORKDIR/shards, prepared if missing)
    c.data.prepare_if_missing = False  # only sensible for phantoms
    c.data.phantom_images = 1600
    c.data.phantom_seed = 0
    c.data.resize = "bilinear"
    c.data.split_by = "patient"  # or "image" (Sabottke & Spieler 2020's unstated choice; leaks)
    c.data.train_fraction = 0.7
    c.data.val_fraction = 0.15  # the rest is the test set (0 = no test set)
    # "official": the source's own test set (NIH test_list.txt, CheXpert valid.csv); train and
    # val then split the rest in the ratio train_fraction : val_fraction
    c.data.test_split = "random"
    # Sabottke & Spieler 2020: all positives + negatives up to this; 0 = all images
    c.data.subsample_size = 0
    c.data.split_seed = 0
    # k-fold cross-validation (Soffer et al. 2019's second design), for rare findings: K >= 2
    # trains every cell K times, fold k validating on fold k of the non-test images (patient-
    # grouped, the same folds at every resolution); resolutions are compared on the pooled
    # out-of-fold predictions, and the untouched test set is scored by every fold's model and by
    # their mean. 0: one hold-out split (train_fraction : val_fraction)
    c.data.folds = 0

    c.sweep = ml_collections.ConfigDict()
    c.sweep.labels = ("Nodule",)
    c.sweep.resolutions = (64,)
    c.sweep.archs = ("resnet34",)
    c.sweep.seeds = (0,)
    # "arch:resolution" pairs: an arch named here runs only at its listed resolutions (Chizari 2021
    # trains each EfficientNet at its own native size).
    c.sweep.only = ()
    # Named variants of the whole sweep, "NAME: FIELD=VALUE; FIELD=VALUE" (Python literals),
    # each run in WORKDIR/NAME and compared model by model (jcxr.train.arms): Cardona Cardenas
    # et al. 2020's class weights 75/25 against 50/50. Empty: one sweep in WORKDIR.
    c.sweep.arms = ()

    c.model = ml_collections.ConfigDict()
    c.model.head = "linear"
    c.model.dropout = 0.0
    c.model.pretrained = ""  # torchvision weights: file or `python -m jcxr.models.port` dir
    c.model.dtype = "float32"
    c.model.remat = False
    # BatchNorm's batch in training, in images: each microbatch is normalised in consecutive
    # groups of this many ("ghost" BatchNorm), so BatchNorm sees the same batch at every
    # resolution however memory cuts the effective batch. 0: the whole microbatch (then a fixed
    # microbatch_size is required: "auto" picks smaller ones at higher resolutions).
    c.model.batchnorm_group = 0

    c.optim = ml_collections.ConfigDict()
    c.optim.recipe = "adam"
    c.optim.learning_rate = 5e-4
    c.optim.head_learning_rate = 2.5e-3  # one_cycle: head rate after unfreezing
    c.optim.body_learning_rate = 2.5e-5  # one_cycle: body rate after unfreezing
    c.optim.frozen_learning_rate = 5e-3  # one_cycle: head rate while the body is frozen
    c.optim.freeze_epochs = 0
    c.optim.weight_decay = 0.0
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.plateau_factor = 0.5
    c.optim.plateau_patience = 5  # epochs without validation-loss improvement

    c.train = ml_collections.ConfigDict()
    c.train.epochs = 3
    c.train.effective_batch_size = 32  # images per optimiser step, at every resolution
    # images per forward/backward; must divide the above. "auto": the largest divisor whose
    # compiled step fits in device memory (probed without running it, cached per device kind)
    c.train.microbatch_size = ml_collections.FieldReference(32, field_type=object)
    # How a step runs its microbatches: "scan" (one compiled body, the least memory), "unroll"
    # (straight-line code: XLA:CPU runs convolutions ~12x faster than inside a scan, at the cost
    # of buffers per microbatch), or "auto": unroll on CPU, scan elsewhere
    c.train.accumulate = "auto"
    # What one element of a batch is: "image", or "study" (Chizari 2021): a study's views (up to
    # `views`, padded and masked) go through the network and its logit is the max over them (the
    # max of probabilities, as the sigmoid is monotonic); effective_batch_size and
    # microbatch_size then count studies, batchnorm_group too. Needs eval.study_level.
    c.train.unit = "image"
    c.train.views = 3  # CheXpert: up to 3 views per study
    c.train.loss = "weighted_bce"
    c.train.class_weights = (0.5, 0.5)  # (negative, positive) for loss="class_weights"
    c.train.augment = True
    c.train.max_rotation = 20.0
    c.train.max_scale = 0.1
    c.train.max_translate = 0.05
    c.train.flip = True
    c.train.max_brightness = 0.1
    c.train.max_contrast = 0.1
    c.train.max_shear = 0.0  # degrees (Cardona Cardenas et al. 2020 shear; Keras' shear_range)
    # augment positive images only, negatives as they are (Cardona Cardenas et al. 2020)
    c.train.augment_positives_only = False
    # Precise BatchNorm statistics (Wu & Johnson 2021): before every evaluation the running
    # mean and variance are recomputed with the current weights over this many training images
    # (a fixed, seeded subset, no augmentation), instead of the running averages of training.
    # Cost: one forward pass over them per epoch. 0: keep the running averages (torchvision's).
    c.train.precise_bn_images = 1024
    # Train each cell until validation AUC has not improved for `patience` epochs (at most
    # `epochs`): the same stopping rule at every resolution. Off: exactly `epochs` epochs.
    c.train.until_plateau = False
    c.train.patience = 3
    c.train.log_every = 20  # steps between host syncs for logging
    c.train.checkpoint_every = 50  # steps between "latest" checkpoints (and every epoch end)

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 128
    # extra augmented views averaged with the original (Sabottke & Spieler 2020: 4)
    c.eval.tta_views = 0
    c.eval.study_level = False  # CheXpert: score a study by the max over its views (Chizari 2021)
    c.eval.compare_on = "test"  # split for the DeLong comparison; "val" if there is no test set
    # The comparison's independent unit. "auto": clusters of a patient's images (or studies)
    # wherever the compared set holds several of one patient (Obuchowski 1997's clustered
    # DeLong); "patient" or "study": always those clusters; "none": every image (or study)
    # independent, as Sabottke & Spieler 2020 and Chizari 2021 computed DeLong.
    c.eval.cluster_by = "auto"
    # The sweep's answer per finding: the smallest resolution not worse than the reference by
    # more than the margin (one-sided alpha 0.05). Reference: 0 = the best (highest AUC), or a
    # resolution in px; procedure: "fixed_sequence" (from the reference downward) or "holm".
    c.eval.noninferiority_margin = 0.01
    c.eval.noninferiority_reference = 0
    c.eval.noninferiority_procedure = "fixed_sequence"
    # After training: where each cell's network looks (Grad-CAM), scored against the data's
    # boxes (NIH's BBox_List_2017.csv, or the phantoms' own) on up to this many test images per
    # cell; the report and W&B show it. Skipped where the data has no boxes. The map:
    # "grad_cam", "grad_cam_plus_plus" or "cam", at a layer of jcxr.explain.layer_names(arch)
    # ("" = each architecture's last stage, the feature map its head pools).
    c.eval.localise = False
    c.eval.localise_images = 16
    c.eval.localise_method = "grad_cam"
    c.eval.localise_layer = ""
    # External validation (Cardona Cardenas et al. 2020): shards of another dataset, prepared at
    # the sweep's resolutions with its labels (e.g. OpenI's cohort: prepare --source openi
    # --preset cardenas2020). Each cell is evaluated there too (split "external", per image)
    # and its internal test AUC compared with the external one (unpaired DeLong). "phantoms": the
    # run's own second hospital of phantoms (another scanner; jcxr.data.phantom_hospital).
    c.eval.external = ""
    # denominator of the AUC ratio figure (Sabottke & Spieler 2020 Fig 3)
    c.eval.reference_resolution = 320

    c.parallel = ml_collections.ConfigDict()
    # How cells use the devices: "data_parallel" (each cell on every device, batch sharded),
    # "per_device" (independent cells side by side, one per device), or "auto": per device for
    # cells below per_device_below px when there are several local devices and one process.
    c.parallel.placement = "auto"
    c.parallel.per_device_below = 224
    c.parallel.devices = 0  # local devices to use; 0 = all
    c.parallel.distributed = "auto"  # jax.distributed: "auto" (SLURM / JAX_* env), "on", "off"
    # Keep a split's uint8 pixels in device memory for the whole run: "auto" = when they fit in
    # device_dataset_fraction of an accelerator's memory (never on CPU: nothing to gain).
    c.parallel.device_dataset = "auto"
    c.parallel.device_dataset_fraction = 0.25
    c.parallel.memory_fraction = 0.85  # of device memory the "auto" microbatch may use

    c.logging = ml_collections.ConfigDict()
    c.logging.wandb = "offline"  # "online", "offline" or "disabled"
    c.logging.project = "jcxr"
    # seconds an online W&B run may take to start; past it (no network) the sweep logs offline
    c.logging.wandb_init_timeout = 30.0
    c.logging.progress = True

    c.lock()
    return c


def from_json(text: str) -> ml_collections.ConfigDict:
    """A workdir's ``config.json`` read back as a full config: fields newer than the file keep
    their defaults; lists become the tuples the fields hold."""
    config = defaults()
    for key, value in json.loads(text).items():
        if not isinstance(value, dict):
            config[key] = value
            continue
        for field, v in value.items():
            if field in config[key]:
                config[key][field] = tuple(v) if isinstance(v, list) else v
    return config


def validate(config: ml_collections.ConfigDict) -> None:
    """Check values (keys are checked by the lock); raise ValueError naming the field."""

    def choice(field, value, options):
        if value not in options:
            raise ValueError(f"config.{field} = {value!r}; expected one of {list(options)}")

    def count(field, value, minimum, expected):
        """A whole number >= ``minimum`` (a bool is not one)."""
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"config.{field} = {value!r}; expected {expected}")

    check_source(config.data.source, field="config.data.source")
    choice("data.split_by", config.data.split_by, ("patient", "image"))
    choice("data.test_split", config.data.test_split, ("random", "official"))
    choice("optim.recipe", config.optim.recipe, RECIPES)
    choice("train.loss", config.train.loss, LOSSES)
    choice("model.dtype", config.model.dtype, DTYPES)
    choice("logging.wandb", config.logging.wandb, ("online", "offline", "disabled"))
    choice("eval.compare_on", config.eval.compare_on, ("test", "val"))
    choice("eval.cluster_by", config.eval.cluster_by, CLUSTER_BY)
    choice("eval.noninferiority_procedure", config.eval.noninferiority_procedure, PROCEDURES)
    margin = config.eval.noninferiority_margin
    if not (isinstance(margin, float | int) and 0 <= margin < 1):
        raise ValueError(
            f"config.eval.noninferiority_margin = {margin!r}; expected an AUC difference in [0, 1)"
        )
    ni_ref = config.eval.noninferiority_reference
    if ni_ref != 0 and ni_ref not in tuple(config.sweep.resolutions):
        raise ValueError(
            f"config.eval.noninferiority_reference = {ni_ref!r}; expected 0 (the best) or one "
            f"of the sweep's resolutions {tuple(config.sweep.resolutions)}"
        )
    choice("train.accumulate", config.train.accumulate, ACCUMULATE)
    choice("train.unit", config.train.unit, ("image", "study"))
    if config.train.unit == "study":
        if not config.eval.study_level:
            raise ValueError(
                "config.train.unit = 'study' trains on studies; evaluate them as studies too: "
                "set config.eval.study_level = True"
            )
        count("train.views", config.train.views, 1, ">= 1")
    choice("parallel.placement", config.parallel.placement, PLACEMENTS)
    choice("parallel.distributed", config.parallel.distributed, ("auto", "on", "off"))
    choice("parallel.device_dataset", config.parallel.device_dataset, ("auto", "on", "off"))
    t = config.train
    m = t.microbatch_size
    if m != "auto" and not (isinstance(m, int) and not isinstance(m, bool)):
        raise ValueError(f"config.train.microbatch_size = {m!r}; expected an integer or 'auto'")
    if t.effective_batch_size < 1 or (m != "auto" and m < 1):
        raise ValueError("config.train.effective_batch_size and microbatch_size must be >= 1")
    if m != "auto" and t.effective_batch_size % m:
        raise ValueError(
            f"config.train.microbatch_size = {m} must divide "
            f"effective_batch_size = {t.effective_batch_size}"
        )
    group = config.model.batchnorm_group
    count("model.batchnorm_group", group, 0, "0 (the microbatch) or a number of images >= 1")
    if group == 0 and m == "auto":
        raise ValueError(
            "config.train.microbatch_size = 'auto' with config.model.batchnorm_group = 0: the "
            "automatic microbatch shrinks as resolution grows, and BatchNorm would normalise "
            "over fewer images there; set batchnorm_group (images) to keep it the same"
        )
    for field, size in (("effective_batch_size", t.effective_batch_size), ("microbatch_size", m)):
        if group and size != "auto" and size % group:
            raise ValueError(
                f"config.train.{field} = {size} is not a whole number of BatchNorm groups "
                f"(config.model.batchnorm_group = {group})"
            )
    count("train.precise_bn_images", t.precise_bn_images, 0, "0 (off) or a number of images")
    k = config.data.folds
    if isinstance(k, bool) or not isinstance(k, int) or k == 1 or k < 0:
        raise ValueError(
            f"config.data.folds = {k!r}; expected 0 (one hold-out split) or a number of folds >= 2"
        )
    fractions = config.data.train_fraction + config.data.val_fraction
    if not (0 < config.data.train_fraction < 1 and 0 < config.data.val_fraction and fractions <= 1):
        raise ValueError(
            "config.data.train_fraction and val_fraction must be in (0, 1) with a sum <= 1; got "
            f"{config.data.train_fraction} and {config.data.val_fraction}"
        )
    for field in ("labels", "resolutions", "archs", "seeds"):
        values = tuple(config.sweep[field])
        if not values:
            raise ValueError(f"config.sweep.{field} is empty")
        repeated = sorted({v for v in values if values.count(v) > 1}, key=values.index)
        if repeated:
            raise ValueError(
                f"config.sweep.{field} = {values} lists {', '.join(map(repr, repeated))} more "
                "than once; list each once"
            )
    known = models.list_archs()
    for arch in config.sweep.archs:
        choice("sweep.archs", arch, known)
    if config.eval.localise:
        _validate_localise(config.eval, config.sweep.archs)
    if config.sweep.arms:
        from jcxr.train.arms import arm_configs  # each arm's config, validated

        arm_configs(config)
    for pair in config.sweep.only:
        arch, _, resolution = str(pair).partition(":")
        if arch not in known or not resolution.isdigit():
            raise ValueError(
                f"config.sweep.only has {pair!r}; expected 'ARCH:RESOLUTION' with ARCH one of "
                f"{known}"
            )
    if any(r < 32 for r in config.sweep.resolutions):
        raise ValueError(
            f"config.sweep.resolutions must be >= 32 px; got {config.sweep.resolutions}"
        )
    for arch in config.sweep.archs:
        smallest = models.min_size(arch)
        if any(r < smallest for r in resolutions_for(config, arch)):
            raise ValueError(f"config.sweep.resolutions: {arch} takes images of {smallest} px "
                             f"and up; got {resolutions_for(config, arch)}")  # fmt: skip
    if not config.logging.wandb_init_timeout > 0:
        raise ValueError(
            f"config.logging.wandb_init_timeout = {config.logging.wandb_init_timeout}; expected "
            "a number of seconds > 0"
        )
    count("train.patience", t.patience, 1, "a number of epochs >= 1")
    if t.epochs < 1:
        raise ValueError(f"config.train.epochs must be >= 1; got {t.epochs}")


def _validate_localise(c, archs) -> None:
    from jcxr import explain

    if c.localise_method not in explain.MAPS:
        raise ValueError(
            f"config.eval.localise_method = {c.localise_method!r}; expected one of "
            f"{list(explain.MAPS)}"
        )
    if c.localise_layer:
        for arch in archs:
            names = explain.layer_names(arch)
            if c.localise_layer not in names:
                raise ValueError(
                    f"config.eval.localise_layer = {c.localise_layer!r} is not a layer of {arch}; "
                    f"expected '' (the last stage) or one of {names}"
                )


def resolutions_for(config, arch: str) -> list[int]:
    """The sweep's resolutions for ``arch``, restricted by ``sweep.only`` where it names arch."""
    pairs = [str(p).split(":") for p in config.sweep.only]
    listed = [int(r) for a, r in pairs if a == arch and r.isdigit()]
    return listed or list(config.sweep.resolutions)
