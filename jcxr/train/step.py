"""The train and eval steps: one jit each per (model, resolution), compiled once.

A train step takes one *effective* batch of uint8 pixels ``[E, R, R]`` and splits it into
``A = E / M`` microbatches of ``M``; a ``lax.scan`` (unrolled on CPU: see ``accumulate``) runs
forward/backward on each, summing
gradients and threading BatchNorm statistics (updated per microbatch, as PyTorch does) and the
dropout RNG state; then one optimiser update. So the effective batch, the number of updates and
the schedule are the same at every resolution; only ``A`` changes.

Both steps run on a device mesh (:mod:`jcxr.train.parallel`): state replicated, every
microbatch sharded over the devices, so one device and N devices compute the same update.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jcxr.data.augment import Augmentation, augment, key_for
from jcxr.models import grey
from jcxr.models.batchnorm import counted_images
from jcxr.train import optim, parallel


def bce_terms(logits, labels, positive_weight, negative_weight):
    """Per-example weighted binary cross-entropy on logits (numerically stable).

    ``-(w+ y log sigmoid(z) + w- (1 - y) log(1 - sigmoid(z)))``.
    """
    return positive_weight * labels * jax.nn.softplus(-logits) + negative_weight * (
        1.0 - labels
    ) * jax.nn.softplus(logits)


def study_logits(logits, present):
    """A study's logit: the max over its real views (``logits`` and ``present`` ``[M, V]``).
    The max of logits is the max of probabilities (the sigmoid is monotonic); the gradient
    reaches only the view that attains it."""
    return jnp.max(jnp.where(present, logits, -jnp.inf), axis=1)


class Steps:
    """Compiled train/eval steps for one model at one resolution.

    State lives outside the model as pytrees: ``params``, ``others`` (BatchNorm statistics and
    RNG state) and ``opt_state``, replicated over ``mesh`` (default: the first local device);
    the train step donates all three. ``Steps`` is their only writer: read them through
    :attr:`state`, replace them with :meth:`load_state`.

    It also owns the batch split: ``effective_batch_size`` images per update, in microbatches of
    ``microbatch_size`` (:meth:`set_microbatch_size` changes it, e.g. once memory is probed).
    """

    def __init__(
        self,
        model: nnx.Module,
        tx: optax.GradientTransformation,
        *,
        effective_batch_size: int,
        microbatch_size: int,
        augmentation: Augmentation | None,
        seed: int,
        dtype,
        positive_weight: float,
        negative_weight: float = 1.0,
        tta_views: int = 0,
        freeze_batchnorm: bool = False,
        batchnorm_group: int | None = None,
        views: int | None = None,
        accumulate: str = "auto",
        mesh: jax.sharding.Mesh | None = None,
    ):
        self.mesh = mesh if mesh is not None else parallel.first_device_mesh()
        self.batchnorm_group = batchnorm_group or None
        self.views = views
        model.train()
        # BatchNorm groups count batch rows; with studies a group is G studies' V view slots
        rows = self.batchnorm_group and self.batchnorm_group * (views or 1)
        model.set_attributes(group=rows, raise_if_not_found=False)
        if freeze_batchnorm:
            model.set_attributes(use_running_average=True, raise_if_not_found=False)
        self.train_graph, params, others = nnx.split(model, nnx.Param, ...)
        # precise statistics: training-mode BatchNorm reporting its moments, dropout off
        model.set_attributes(collect_moments=True, deterministic=True, raise_if_not_found=False)
        self.moments_graph = nnx.split(model, nnx.Param, ...)[0]
        model.set_attributes(collect_moments=False, raise_if_not_found=False)
        model.eval()
        self.eval_graph = nnx.split(model, nnx.Param, ...)[0]
        self.tx = tx
        self.params, self.others = parallel.replicate((params, others), self.mesh)
        self.opt_state = parallel.replicate(tx.init(self.params), self.mesh)
        self.effective_batch_size = int(effective_batch_size)
        self.set_microbatch_size(microbatch_size)
        self.augmentation = augmentation
        self.seed = seed
        self.dtype = dtype
        self.weights = (float(positive_weight), float(negative_weight))
        self.tta_views = tta_views
        if accumulate not in ("auto", "scan", "unroll"):
            raise ValueError(f"accumulate must be 'auto', 'scan' or 'unroll'; got {accumulate!r}")
        # XLA:CPU runs convolutions ~12x slower inside a scan body than in straight-line code
        # (measured: resnet_tiny, 32 x 128 px, 2.4 s vs 0.19 s per step), so on CPU the
        # microbatch loop is unrolled at trace time; elsewhere one scan body compiles once.
        self.unroll = accumulate == "unroll" or (
            accumulate == "auto" and jax.default_backend() == "cpu"
        )
        self.train_step = jax.jit(self._train_step, donate_argnums=(0, 1, 2))
        self.eval_step = jax.jit(self._eval_step)
        self.moments_step = jax.jit(self._moments_step)

    def _inputs(self, pixels, key, positive=None):
        # One grey channel, not normalised RGB: the models fold the normalisation into their
        # first convolution, the same logits for a third of the stem's cost (jcxr.models.inputs).
        images = pixels.astype(jnp.float32) / 255.0
        if self.augmentation is not None:
            images = augment(key, pixels, self.augmentation, positive)
        return grey(images, self.dtype)

    def _train_step(self, params, others, opt_state, pixels, labels, step, views=None):
        """``pixels`` ``[A, M, R, R]`` uint8 and ``labels`` ``[A, M]``, sharded along M. Studies
        (``views`` ``[A, M, V]``, the real views): ``pixels`` ``[A, M, V, R, R]``."""
        a = pixels.shape[0]
        key = key_for(self.seed, step)

        def microbatch(carry, inputs):
            # params ride in the carry, unchanged, so NNX sees them at the scan's trace level.
            params, grads, others, total = carry
            index, px, y, present = inputs
            # a study's views share its label
            positive = (y if present is None else jnp.repeat(y, px.shape[1])) == 1
            x = self._inputs(px.reshape(-1, *px.shape[-2:]), jax.random.fold_in(key, index),
                             positive)  # fmt: skip
            model = nnx.merge(self.train_graph, params, others)

            def loss_fn(model):
                if present is None:
                    logits = model(x)[:, 0]
                else:  # a study's logit: the max over its real views; padding never counted
                    with counted_images(present.reshape(-1)):
                        logits = study_logits(model(x)[:, 0].reshape(present.shape), present)
                return jnp.mean(bce_terms(logits, y, *self.weights))

            loss, g = nnx.value_and_grad(loss_fn)(model)  # BatchNorm updates land in `model`
            others = nnx.split(model, nnx.Param, ...)[2]
            return (params, jax.tree.map(jnp.add, grads, g), others, total + loss), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        carry = (params, zeros, others, jnp.zeros((), jnp.float32))
        if self.unroll:
            for index in range(a):
                present = None if views is None else views[index]
                carry, _ = microbatch(carry, (index, pixels[index], labels[index], present))
            _, grads, others, total = carry
        else:
            (_, grads, others, total), _ = jax.lax.scan(
                microbatch, carry, (jnp.arange(a), pixels, labels, views)
            )
        grads = jax.tree.map(lambda g: g / a, grads)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {"loss": total / a, "grad_norm": optax.tree.norm(grads)}
        return params, others, opt_state, metrics, step + 1

    def _eval_step(self, params, others, pixels):
        """Logits ``[B, 1 + tta_views]``: of the image, then of each augmented view."""
        model = nnx.merge(self.eval_graph, params, others)
        images = pixels.astype(jnp.float32) / 255.0
        logits = [model(grey(images, self.dtype))[:, 0]]
        for view in range(1, self.tta_views + 1):
            # test time: every image's views (the labels are not known)
            tta = dataclasses.replace(self.augmentation or Augmentation(), positives_only=False)
            views = augment(key_for(self.seed, 0, view), pixels, tta)
            logits.append(model(grey(views, self.dtype))[:, 0])
        return jnp.stack(logits, axis=1).astype(jnp.float32)

    def _moments_step(self, params, others, pixels):
        """Each training-mode BatchNorm's moments on ``pixels`` (no augmentation, no dropout):
        {path: [2, C]}, the mean over its groups of the group mean and mean square."""
        model = nnx.merge(self.moments_graph, params, others)
        forward = nnx.capture(model, nnx.Intermediate)
        return forward(grey(pixels.astype(jnp.float32) / 255.0, self.dtype))[1]

    def recompute_batchnorm(self, batches) -> int:
        """Precise BatchNorm statistics (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm";
        detectron2's PreciseBN): replace every running mean and variance by population
        statistics under the current weights, ``mean = E[group mean]`` and
        ``var = E[group mean square] - mean ** 2`` over the groups of ``batches`` (uint8 pixels
        ``[M, R, R]``, this process's rows of microbatch-sized batches; groups as in training).
        Layers frozen in eval mode keep theirs. Returns the number of batches used."""
        total, count = None, 0
        for pixels in batches:
            moments = self.moments_step(self.params, self.others, self._put(pixels, axis=0))
            total = moments if total is None else jax.tree.map(jnp.add, total, moments)
            count += 1
        if total is None:
            raise ValueError("precise BatchNorm statistics need at least one batch")
        stats = {}
        for path, moments in nnx.to_flat_state(total):
            mean, square = moments.get_value()[0] / count
            stats[(*path[:-1], "mean")] = mean
            stats[(*path[:-1], "var")] = jnp.maximum(square - jnp.square(mean), 0.0)
        flat = [(path, v.replace(stats[path]) if path in stats else v)
                for path, v in nnx.to_flat_state(self.others)]  # fmt: skip
        self.others = parallel.replicate(nnx.from_flat_state(flat), self.mesh)
        return count

    @property
    def microbatches(self) -> int:
        """Microbatches per optimiser update: ``effective_batch_size / microbatch_size``."""
        return self.effective_batch_size // self.microbatch_size

    def set_microbatch_size(self, microbatch_size: int) -> None:
        """Split every effective batch into microbatches of ``microbatch_size`` images: it must
        divide the effective batch and shard evenly over the mesh."""
        if microbatch_size < 1 or self.effective_batch_size % microbatch_size:
            raise ValueError(
                f"microbatch_size = {microbatch_size} must divide effective_batch_size = "
                f"{self.effective_batch_size}"
            )
        parallel.check_divisible("microbatch_size", microbatch_size, self.mesh)
        group, per_device = self.batchnorm_group, microbatch_size // self.mesh.size
        if group and per_device % group:
            raise ValueError(
                f"microbatch_size = {microbatch_size} gives {per_device} images per device, not "
                f"whole BatchNorm groups of {group} (config.model.batchnorm_group)"
            )
        self.microbatch_size = int(microbatch_size)

    @property
    def state(self) -> dict:
        """What a checkpoint holds: ``{"params", "others", "opt_state"}`` (device arrays)."""
        return {"params": self.params, "others": self.others, "opt_state": self.opt_state}

    def load_state(self, state: dict) -> None:
        """Continue from ``state`` (as :attr:`state` gives it, e.g. restored from a checkpoint)."""
        self.params, self.others, self.opt_state = (
            state["params"],
            state["others"],
            state["opt_state"],
        )

    def learning_rates(self) -> dict:
        """The rates of the latest update (see :func:`jcxr.train.optim.current_learning_rates`)."""
        return optim.current_learning_rates(self.opt_state)

    def set_learning_rate(self, rate: float) -> None:
        """Set a single-rate recipe's learning rate for the next updates (host side)."""
        self.opt_state = optim.set_learning_rate(self.opt_state, rate)

    def scale_learning_rate(self, factor: float) -> None:
        """Multiply a single-rate recipe's learning rate by ``factor`` (reduce on plateau)."""
        self.opt_state = optim.scale_learning_rate(self.opt_state, factor)

    def step(self, pixels, labels, step: int, views=None) -> dict:
        """One optimiser update on an effective batch; returns device metrics (no sync).

        ``pixels`` ``[E, R, R]`` uint8 and ``labels`` ``[E]``: this process's rows of the
        effective batch (all of it on one host), as numpy arrays or device arrays. Studies:
        ``pixels`` ``[E, V, R, R]`` and ``views`` ``[E, V]`` (which views are real).
        """
        a = self.microbatches
        pixels = self._put(pixels.reshape(a, -1, *pixels.shape[1:]), axis=1)
        labels = self._put(labels.reshape(a, -1), axis=1)
        if views is not None:
            views = self._put(np.asarray(views).reshape(a, -1, views.shape[-1]), axis=1)
        self.params, self.others, self.opt_state, metrics, next_step = self.train_step(
            self.params, self.others, self.opt_state, pixels, labels, self._step(step), views
        )
        self._next_step = (step + 1, next_step)
        return metrics

    def _step(self, step: int) -> jax.Array:
        """``step`` as a device scalar: the one the last train step returned when it is the
        next, so a training loop sends nothing to the device for it (a Python int would be an
        implicit host-to-device copy every step)."""
        cached = getattr(self, "_next_step", None)
        if cached is not None and cached[0] == step:
            return cached[1]
        return parallel.replicate(np.int32(step), self.mesh)

    def predict(self, pixels) -> np.ndarray:
        """Logits ``[B, 1 + tta_views]`` (the image's, then its test-time views') for this
        process's ``B`` images, on the host."""
        logits = self.eval_step(self.params, self.others, self._put(pixels, axis=0))
        return parallel.local_rows(logits)

    def train_arguments(self, microbatch_size: int, resolution: int) -> tuple:
        """The train step's arguments at ``microbatch_size`` (global) and ``resolution``: the
        current state, with shape-only batches and step, for ``self.train_step.lower(*arguments)``.
        Placed as :meth:`step` places them, so the program is the one training runs (and a
        persistent-cache entry of either serves both)."""
        a, m = self.effective_batch_size // microbatch_size, microbatch_size
        shard = parallel.batch_sharding(self.mesh, axis=1)
        study = () if self.views is None else (self.views,)
        pixels = jax.ShapeDtypeStruct((a, m, *study, resolution, resolution), jnp.uint8,
                                      sharding=shard)  # fmt: skip
        labels = jax.ShapeDtypeStruct((a, m), jnp.float32, sharding=shard)
        views = None
        if study:
            views = jax.ShapeDtypeStruct((a, m, *study), jnp.bool_, sharding=shard)
        step = jax.ShapeDtypeStruct((), jnp.int32, sharding=parallel.replicated(self.mesh))
        return self.params, self.others, self.opt_state, pixels, labels, step, views

    def memory_bytes(self, microbatch_size: int, resolution: int) -> int:
        """Peak bytes per device of the compiled train step at ``microbatch_size`` (global).

        Compiles the step for those shapes (``lower().compile()``), never runs it, and reads
        XLA's memory analysis: arguments + outputs + temporaries - donated (aliased) bytes.
        """
        arguments = self.train_arguments(microbatch_size, resolution)
        stats = self.train_step.lower(*arguments).compile().memory_analysis()
        return int(
            stats.argument_size_in_bytes
            + stats.output_size_in_bytes
            + stats.temp_size_in_bytes
            - stats.alias_size_in_bytes
        )

    def _put(self, x, axis: int):
        if isinstance(x, jax.Array) and jax.process_count() == 1:
            return jax.device_put(x, parallel.batch_sharding(self.mesh, axis))
        return parallel.global_batch(np.asarray(x), self.mesh, axis)
