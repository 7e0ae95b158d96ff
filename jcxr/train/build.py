"""A cell's model and compiled steps, built from the config."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from flax import nnx

from jcxr import models
from jcxr.data.augment import Augmentation
from jcxr.data.label_data import LabelData
from jcxr.results import Cell
from jcxr.train import memory, parallel
from jcxr.train.step import Steps


def build_steps(
    config, cell: Cell, data: LabelData, tx, mesh=None, log: Callable[[str], None] = print
) -> Steps:
    """The cell's model (fresh head, optional pretrained backbone) and compiled steps on ``mesh``
    (default: the first local device), with the config's microbatch size or, for "auto", the
    largest that fits in device memory (:mod:`jcxr.train.memory`)."""
    t, m = config.train, config.model
    mesh = mesh if mesh is not None else parallel.first_device_mesh()
    auto = t.microbatch_size == "auto"
    dtype = jnp.bfloat16 if m.dtype == "bfloat16" else jnp.float32
    model = models.create(
        cell.arch,
        num_outputs=1,
        head=m.head,
        dropout=m.dropout,
        dtype=dtype,
        pretrained=m.pretrained or None,
        remat=m.remat,
        rngs=nnx.Rngs(params=cell.seed, dropout=cell.seed + 1),
    )
    augmentation = None
    if t.augment:
        augmentation = Augmentation(
            t.max_rotation, t.max_scale, t.max_translate, t.flip, t.max_brightness, t.max_contrast,
            t.max_shear, t.augment_positives_only,
        )  # fmt: skip
    positive, negative = {
        "weighted_bce": (data.positive_weight, 1.0),
        "bce": (1.0, 1.0),
        "class_weights": (t.class_weights[1], t.class_weights[0]),
    }[t.loss]
    steps = Steps(
        model,
        tx,
        effective_batch_size=t.effective_batch_size,
        # "auto" starts from the largest candidate; probing compiles the others, never runs them
        microbatch_size=(
            memory.candidates(t.effective_batch_size, mesh.size, m.batchnorm_group)[0]
            if auto
            else t.microbatch_size
        ),
        augmentation=augmentation,
        seed=cell.seed,
        dtype=dtype,
        positive_weight=positive,
        negative_weight=negative,
        tta_views=config.eval.tta_views,
        batchnorm_group=m.batchnorm_group,
        views=t.views if t.unit == "study" else None,
        accumulate=t.accumulate,
        mesh=mesh,
    )
    if auto:
        steps.set_microbatch_size(
            memory.choose_microbatch(
                steps,
                key=f"{cell.arch}|{m.head}|{m.dtype}|remat={m.remat}|"
                f"{'unroll' if steps.unroll else 'scan'}",
                resolution=cell.resolution,
                budget_bytes=memory.device_budget(
                    steps.mesh.devices.flat[0], config.parallel.memory_fraction
                ),
                log=log,
            )
        )
    return steps
