"""Per-epoch training plans: the data core that every executor runs.

An `EpochPlan` says which images go in which batch of an epoch and how
each is augmented (crop offsets, flips, mixup partner and lambda). It is a
pure function of `(seed, epoch)` (numpy only, no TensorFlow), so

- the tf.data executor (`keras_dlpa.data.pipeline.epoch_keyed_pipeline`),
  the grain executor (`keras_dlpa.data.grain_executor`) and the device
  executor (`keras_dlpa.data.device_executor`) yield bit-identical
  batches;
- a run resumed at epoch `e` sees exactly the batches an uninterrupted run
  sees (resume is a slice of the epoch sequence).

`BatchMaker` is the reference (numpy) implementation of one planned batch;
the grain executor calls it, the tf.data and device executors do the same
gathers with TensorFlow or JAX ops.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.input_shard import WHOLE_BATCH
from keras_dlpa.data.input_shard import InputShard
from keras_dlpa.data.input_shard import check_batch_size

# Mixed into every plan seed so plans differ from other uses of `seed`.
_PLAN_STREAM = 0x9E3779B9


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training augmentation of a plan.

    Args:
        crop_padding: zero padding of the random crop (torchvision
            `RandomCrop(size, padding=crop_padding)`); 0 disables it.
        flip: random horizontal flip with probability 0.5.
        mixup_alpha: mixup with one `lam ~ Beta(alpha, alpha)` per batch and
            a random partner permutation; 0 disables it (sparse labels).
        class_balanced: draw a class uniformly (among classes present),
            then an image of it uniformly, with replacement, instead of a
            permutation of the images. An epoch has as many batches.
    """

    crop_padding: int = 4
    flip: bool = True
    mixup_alpha: float = 0.0
    class_balanced: bool = False

    def __post_init__(self):
        _check_count("crop_padding", self.crop_padding)
        alpha = self.mixup_alpha or 0.0
        if not np.isfinite(alpha) or alpha < 0:
            raise ValueError(
                "`mixup_alpha` must be >= 0 (0 disables mixup). Received: "
                f"mixup_alpha={self.mixup_alpha!r}"
            )
        object.__setattr__(self, "crop_padding", int(self.crop_padding))
        object.__setattr__(self, "mixup_alpha", float(alpha))

    @property
    def soft_labels(self) -> bool:
        """Whether batches carry soft `(B, c)` labels (mixup)."""
        return self.mixup_alpha > 0


@dataclasses.dataclass(frozen=True)
class EpochPlan:
    """Batches of one epoch and their augmentation draws.

    Attributes:
        indices: int64 `(S, B)`: image indices of each batch.
        offsets: int32 `(S, B, 2)`: crop offsets (row, column) into the
            zero-padded image, in `[0, 2 * crop_padding]`.
        flips: bool `(S, B)`: flip left-right.
        partners: int64 `(S, B)`: mixup partner (position in the batch).
        lam: float32 `(S,)`: mixup weight of each batch (1 without mixup).
    """

    indices: np.ndarray
    offsets: np.ndarray
    flips: np.ndarray
    partners: np.ndarray
    lam: np.ndarray

    @property
    def steps(self) -> int:
        return int(self.indices.shape[0])

    def arrays(self) -> tuple[np.ndarray, ...]:
        """`(indices, offsets, flips, partners, lam)`."""
        return (self.indices, self.offsets, self.flips, self.partners, self.lam)


def _check_count(name: str, value) -> None:
    """A `ValueError` unless `value` (the argument `name`) is an integer
    >= 0."""
    if int(value) != value or value < 0:
        raise ValueError(
            f"`{name}` must be an integer >= 0. Received: {name}={value!r}"
        )


def check_epoch_range(initial_epoch: int, epochs: int) -> None:
    """A `ValueError` unless `0 <= initial_epoch <= epochs` (the epochs
    an executor runs, `initial_epoch .. epochs - 1`)."""
    if not 0 <= int(initial_epoch) <= int(epochs):
        raise ValueError(
            "Expected 0 <= `initial_epoch` <= `epochs`. Received: "
            f"initial_epoch={initial_epoch}, epochs={epochs}"
        )


@dataclasses.dataclass(frozen=True)
class TrainingInput:
    """The planned training batches of a run: what an executor yields.

    Holds everything that decides the batches bit for bit: batch size,
    seed, the epochs to run and the augmentation. Every training-input
    function (`ImageData.train_dataset`, `LabelledPaths.train_dataset`,
    `train_dataset`, `grain_train_dataset`, `device_train_dataset`,
    `pipeline.epoch_keyed_pipeline`, `stream_train_dataset`) takes it as
    one argument. How the batches are built (the executor, decode
    `workers`, a multi-host `shard`) stays a separate argument: it does
    not change the batches.

    Args:
        batch_size: images per global batch `B` (>= 1).
        seed: run seed of the plans (>= 0).
        initial_epoch: first epoch (resume), `0 <= initial_epoch <= epochs`.
        epochs: one past the last epoch; the executors yield epochs
            `initial_epoch .. epochs - 1`.
        augmentation: an `Augmentation` for in-memory data or a
            `StreamAugmentation` for streamed data; `None` takes the
            default of the data's kind (in memory: crop 4 + flip).

    Example:

    ```python
    data = keras_dlpa.data.from_arrays(images, labels)
    training_input = keras_dlpa.data.TrainingInput(
        batch_size=128, seed=0, initial_epoch=0, epochs=200
    )
    dataset, steps = data.train_dataset(training_input)
    ```
    """

    batch_size: int
    seed: int
    initial_epoch: int
    epochs: int
    augmentation: object = None

    def __post_init__(self):
        check_batch_size(self.batch_size)
        for name in ("seed", "initial_epoch", "epochs"):
            _check_count(name, getattr(self, name))
        check_epoch_range(self.initial_epoch, self.epochs)
        from keras_dlpa.data.stream_plan import StreamAugmentation

        kinds = (Augmentation, StreamAugmentation)
        if self.augmentation is not None and not isinstance(
            self.augmentation, kinds
        ):
            raise TypeError(
                "`augmentation` must be an `Augmentation` (in-memory data), "
                "a `StreamAugmentation` (streamed data) or None. Received: "
                f"augmentation={self.augmentation!r}"
            )
        for name in ("batch_size", "seed", "initial_epoch", "epochs"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def augmentation_or(self, kind: type):
        """`augmentation`, or `kind()` when it is None; a `TypeError`
        unless it is a `kind` (an executor of in-memory data needs an
        `Augmentation`, one of streamed data a `StreamAugmentation`)."""
        if self.augmentation is None:
            return kind()
        if not isinstance(self.augmentation, kind):
            raise TypeError(
                "The training input's `augmentation` must be of type "
                f"`{kind.__name__}` for this data (in memory: `Augmentation`,"
                " streamed: `StreamAugmentation`; `data.augmentation(config)`"
                f" makes the right one). Received: {self.augmentation!r}"
            )
        return self.augmentation


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Full batches per epoch (the remainder of each epoch is dropped)."""
    check_batch_size(batch_size)
    if num_examples < batch_size:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than the {num_examples} "
            "training images, so an epoch would have no full batch. Lower "
            "`batch_size`."
        )
    return int(num_examples) // int(batch_size)


def epoch_plan(
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    augmentation: Augmentation | None = None,
    num_classes: int | None = None,
) -> EpochPlan:
    """The plan of epoch `epoch`: a pure function of `(seed, epoch)`.

    Draws come from `np.random.default_rng([seed, epoch, const])` in a
    fixed order: the batch order (a permutation cut into
    `len(labels) // batch_size` full batches, or class-balanced draws),
    crop offsets, flips, then mixup lambdas and partners.

    Args:
        labels: int `(N,)` training labels.
        batch_size: images per batch `B`.
        seed: run seed (>= 0).
        epoch: epoch index (>= 0).
        augmentation: an `Augmentation`; default crop 4 + flip, no mixup.
        num_classes: `c`, for class-balanced draws (default max + 1).

    Returns:
        An `EpochPlan` with `S = len(labels) // batch_size` batches.
    """
    augmentation = augmentation or Augmentation()
    labels = np.asarray(labels)
    _check_count("seed", seed)
    _check_count("epoch", epoch)
    num = int(labels.shape[0])
    steps = steps_per_epoch(num, batch_size)
    shape = (steps, int(batch_size))
    rng = np.random.default_rng([int(seed), int(epoch), _PLAN_STREAM])
    if augmentation.class_balanced:
        if num_classes is None:
            num_classes = int(labels.max()) + 1
        counts = np.bincount(labels, minlength=num_classes)
        present = np.flatnonzero(counts > 0)
        order = np.argsort(labels, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        classes = present[rng.integers(0, present.size, size=shape)]
        within = np.floor(rng.random(shape) * counts[classes]).astype(np.int64)
        within = np.minimum(within, counts[classes] - 1)
        indices = order[starts[classes] + within]
    else:
        indices = rng.permutation(num)[: steps * batch_size].reshape(shape)
    pad = augmentation.crop_padding
    if pad > 0:
        offsets = rng.integers(0, 2 * pad + 1, size=shape + (2,))
    else:
        offsets = np.zeros(shape + (2,), np.int64)
    if augmentation.flip:
        flips = rng.random(shape) < 0.5
    else:
        flips = np.zeros(shape, bool)
    if augmentation.soft_labels:
        alpha = augmentation.mixup_alpha
        lam = rng.beta(alpha, alpha, size=steps).astype(np.float32)
        partners = np.argsort(rng.random(shape), axis=1)
    else:
        lam = np.ones((steps,), np.float32)
        partners = np.broadcast_to(np.arange(batch_size), shape).copy()
    return EpochPlan(
        indices=indices.astype(np.int64),
        offsets=offsets.astype(np.int32),
        flips=flips,
        partners=partners.astype(np.int64),
        lam=lam,
    )


def crop_flip(
    images: np.ndarray, offsets: np.ndarray, flips: np.ndarray, padding: int
) -> np.ndarray:
    """Zero-padded crops at `offsets`, flipped where `flips` (numpy).

    Args:
        images: `(B, H, W, C)` array (any dtype; kept).
        offsets: int `(B, 2)` row/column offsets in `[0, 2 * padding]`.
        flips: bool `(B,)`.
        padding: zero padding on each side.

    Returns:
        `(B, H, W, C)` array of the input dtype.
    """
    batch, height, width = images.shape[:3]
    if padding > 0:
        pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
        images = np.pad(images, pads)
    rows = offsets[:, 0, None] + np.arange(height)[None, :]
    cols = np.broadcast_to(np.arange(width)[None, :], (batch, width))
    cols = np.where(flips[:, None], width - 1 - cols, cols)
    cols = offsets[:, 1, None] + cols
    b = np.arange(batch)[:, None, None]
    return images[b, rows[:, :, None], cols[:, None, :]]


class BatchMaker:
    """Builds planned batches from in-memory images (numpy reference).

    `maker(plan, step)` returns `(images, labels)`: float32 images
    `(B, H, W, 3)` on the raw 0-255 scale (the model normalises them) and
    int32 labels `(B,)`, or float32 `(B, c)` soft labels with mixup (or
    `one_hot=True`).

    With a `shard` (multi-host input, `keras_dlpa.data.InputShard`) it
    builds only rows `shard.rows(B)` of each planned batch, `B / count`
    rows, equal bit for bit to those rows of the whole batch; with mixup
    it also crops the partner rows those rows mix with.

    Args:
        data: the training `ImageData`.
        augmentation: the plan's `Augmentation`.
        one_hot: one-hot labels without mixup.
        shard: the rows of each batch to build; default the whole batch.
    """

    def __init__(
        self,
        data: ImageData,
        augmentation: Augmentation,
        one_hot: bool = False,
        shard: InputShard | None = None,
    ):
        self.images = data.images
        self.labels = data.labels.astype(np.int32)
        self.num_classes = data.num_classes
        self.augmentation = augmentation
        self.one_hot = bool(one_hot) or augmentation.soft_labels
        self.shard = shard or WHOLE_BATCH

    def _crops(self, plan: EpochPlan, step: int, rows) -> np.ndarray:
        aug = self.augmentation
        images = self.images[plan.indices[step][rows]]
        if aug.crop_padding > 0 or aug.flip:
            images = crop_flip(
                images,
                plan.offsets[step][rows],
                plan.flips[step][rows],
                aug.crop_padding,
            )
        return images.astype(np.float32)

    def __call__(self, plan: EpochPlan, step: int):
        aug = self.augmentation
        rows = self.shard.rows(plan.indices.shape[1])
        images = self._crops(plan, step, rows)
        labels = self.labels[plan.indices[step][rows]]
        if not self.one_hot:
            return images, labels
        eye = np.eye(self.num_classes, dtype=np.float32)
        onehot = eye[labels]
        if not aug.soft_labels:
            return images, onehot
        lam = plan.lam[step]
        rest = np.float32(1.0) - lam
        partners = plan.partners[step][rows]
        if self.shard.is_whole:
            other = images[partners]
        else:  # partners anywhere in the global batch
            other = self._crops(plan, step, partners)
        other_onehot = eye[self.labels[plan.indices[step][partners]]]
        return lam * images + rest * other, lam * onehot + rest * other_onehot
