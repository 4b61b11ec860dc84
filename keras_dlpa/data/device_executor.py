"""The device-resident executor of the epoch plans (JAX, in-memory data;
see docs/data.md)."""

from __future__ import annotations

import functools

import numpy as np

from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.image_data import check_kind
from keras_dlpa.data.input_shard import InputShard
from keras_dlpa.data.plan import Augmentation
from keras_dlpa.data.plan import TrainingInput
from keras_dlpa.data.plan import crop_flip
from keras_dlpa.data.plan import epoch_plan
from keras_dlpa.data.plan import steps_per_epoch


def _import_jax():
    try:
        import jax
    except ImportError as error:
        raise ImportError(
            "The device executor needs JAX (`executor='device'` runs on "
            "the JAX backend): pip install jax, or use executor='grain'."
        ) from error
    return jax


def _make_batch_fn(num_classes: int, padding: int, one_hot: bool, mix: bool):
    """The compiled `(images, labels, plan arrays, step) -> batch`."""
    jax = _import_jax()
    jnp = jax.numpy

    def make(images, labels, plan, step):
        indices, offsets, flips, partners, lam = (a[step] for a in plan)
        x = crop_flip(images[indices], offsets, flips, padding, xp=jnp)
        x = x.astype(jnp.float32)
        y = labels[indices]
        if not one_hot:
            return x, y
        y = jax.nn.one_hot(y, num_classes, dtype=jnp.float32)
        if not mix:
            return x, y
        rest = jnp.float32(1.0) - lam
        return lam * x, rest * x[partners], lam * y, rest * y[partners]

    make = jax.jit(make)
    if not mix:
        return make

    # XLA contracts `a * b + c * d` within one compiled function into a
    # fused multiply-add (rounded once, numpy rounds each product), and
    # optimisation barriers do not stop it: the products come out of
    # `make` rounded, and a second function adds them.
    add_pairs = jax.jit(lambda t: (t[0] + t[1], t[2] + t[3]))
    return lambda *args: add_pairs(make(*args))


def device_train_dataset(
    data: ImageData,
    training_input: TrainingInput,
    one_hot: bool = False,
    shard: InputShard | None = None,
):
    """Planned training batches of epochs `initial_epoch .. epochs - 1`,
    built on the JAX default device.

    Args:
        data: the training `ImageData`.
        training_input: the `plan.TrainingInput`.
        one_hot: one-hot labels without mixup.
        shard: must be the whole batch (or None).

    Returns:
        `(batches, steps_per_epoch)`: a generator of device `(images,
        labels)`: float32 0-255 `(B, H, W, 3)`; int32 `(B,)` or float32
        `(B, c)`.
    """
    jax = _import_jax()
    hint = " (in-memory data; streamed data uses executor='grain' or 'tf')"
    check_kind(data, ImageData, hint)
    if shard is not None and not shard.is_whole:
        raise ValueError(
            "The device executor builds whole batches on one process. "
            f"Received: shard={shard}. Use executor='grain' or 'tf' for "
            "multi-process input."
        )
    augmentation = training_input.augmentation_or(Augmentation)
    batch_size = training_input.batch_size
    steps = steps_per_epoch(len(data), batch_size)
    labels = np.asarray(data.labels)
    soft = augmentation.soft_labels
    make = _make_batch_fn(
        data.num_classes, augmentation.crop_padding, bool(one_hot) or soft, soft
    )
    plan_of = functools.partial(
        epoch_plan,
        labels,
        batch_size,
        training_input.seed,
        augmentation=augmentation,
        num_classes=data.num_classes,
    )

    def batches():
        images = jax.device_put(np.asarray(data.images))
        device_labels = jax.device_put(labels.astype(np.int32))
        for epoch in range(training_input.initial_epoch, training_input.epochs):
            plan = plan_of(epoch)
            arrays = jax.device_put(
                (
                    plan.indices.astype(np.int32),
                    plan.offsets,
                    plan.flips,
                    plan.partners.astype(np.int32),
                    plan.lam,
                )
            )
            for step in range(steps):
                yield make(images, device_labels, arrays, np.int32(step))

    return batches(), steps
