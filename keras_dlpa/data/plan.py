"""Per-epoch training plans of in-memory data (see docs/data.md)."""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number
from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.input_shard import WHOLE_BATCH
from keras_dlpa.data.input_shard import InputShard

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
        padding = check_int("crop_padding", self.crop_padding, minimum=0)
        alpha = check_number(
            "mixup_alpha", self.mixup_alpha or 0.0, closed=True
        )
        object.__setattr__(self, "crop_padding", padding)
        object.__setattr__(self, "mixup_alpha", alpha)

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

    def arrays(self) -> tuple[np.ndarray, ...]:
        """`(indices, offsets, flips, partners, lam)`."""
        return (self.indices, self.offsets, self.flips, self.partners, self.lam)


@dataclasses.dataclass(frozen=True)
class TrainingInput:
    """Everything that decides a run's training batches bit for bit.

    Every executor takes it as one argument; how the batches are built
    (executor, `workers`, `shard`) is separate, as it does not change them.

    Args:
        batch_size: images per global batch `B` (>= 1).
        seed: run seed of the plans (>= 0).
        initial_epoch: first epoch (resume), `0 <= initial_epoch <= epochs`.
        epochs: one past the last epoch; the executors yield epochs
            `initial_epoch .. epochs - 1`.
        augmentation: an `Augmentation` for in-memory data or a
            `StreamAugmentation` for streamed data; `None` takes the
            default of the data's kind (in memory: crop 4 + flip).
    """

    batch_size: int
    seed: int
    initial_epoch: int
    epochs: int
    augmentation: object = None

    def __post_init__(self):
        for name in ("batch_size", "seed", "initial_epoch", "epochs"):
            least = 1 if name == "batch_size" else 0
            value = check_int(name, getattr(self, name), minimum=least)
            object.__setattr__(self, name, value)
        if self.initial_epoch > self.epochs:
            raise ValueError(
                "Expected 0 <= `initial_epoch` <= `epochs`. Received: "
                f"initial_epoch={self.initial_epoch}, epochs={self.epochs}"
            )
        from keras_dlpa.data.stream_plan import StreamAugmentation

        kinds = (Augmentation, StreamAugmentation, type(None))
        if not isinstance(self.augmentation, kinds):
            raise TypeError(
                "`augmentation` must be an `Augmentation` (in-memory data), "
                "a `StreamAugmentation` (streamed data) or None. Received: "
                f"augmentation={self.augmentation!r}"
            )

    def augmentation_or(self, kind: type):
        """`augmentation`, or `kind()` when None; a `TypeError` if no `kind`."""
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
    check_int("batch_size", batch_size)
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

    Draws, in order: batch order (permutation or class-balanced), crop
    offsets, flips, mixup lambdas and partners.

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
    check_int("seed", seed, minimum=0)
    check_int("epoch", epoch, minimum=0)
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
    offsets = np.zeros(shape + (2,), np.int64)
    if pad > 0:
        offsets = rng.integers(0, 2 * pad + 1, size=shape + (2,))
    flips = np.zeros(shape, bool)
    if augmentation.flip:
        flips = rng.random(shape) < 0.5
    if augmentation.soft_labels:
        alpha = augmentation.mixup_alpha
        lam = rng.beta(alpha, alpha, size=steps).astype(np.float32)
        partners = np.argsort(rng.random(shape), axis=1)
    else:
        lam = np.ones((steps,), np.float32)
        partners = np.broadcast_to(np.arange(batch_size), shape).copy()
    indices, partners = indices.astype(np.int64), partners.astype(np.int64)
    return EpochPlan(indices, offsets.astype(np.int32), flips, partners, lam)


def crop_flip(images, offsets, flips, padding: int, xp=np):
    """`(B, H, W, C)` zero-padded crops of `images` at int `(B, 2)`
    `offsets`, flipped where bool `(B,)` `flips`; `xp`: numpy or jax.numpy.
    """
    batch, height, width = images.shape[:3]
    if padding > 0:
        pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
        images = xp.pad(images, pads)
    rows = offsets[:, 0, None] + xp.arange(height)[None, :]
    cols = xp.broadcast_to(xp.arange(width)[None, :], (batch, width))
    cols = xp.where(flips[:, None], width - 1 - cols, cols)
    cols = offsets[:, 1, None] + cols
    b = xp.arange(batch)[:, None, None]
    return images[b, rows[:, :, None], cols[:, None, :]]


class BatchMaker:
    """`maker(plan, step) -> (images, labels)`: the numpy reference batch.

    Images are float32 0-255 `(b, H, W, 3)`; labels int32 `(b,)`, or
    float32 `(b, c)` with mixup or `one_hot`. With a `shard` only rows
    `shard.rows(B)` (`b = B / shard.count`) are built, bit for bit those
    of the whole batch (mixup also crops the partner rows they need).

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
            offsets, flips = plan.offsets[step][rows], plan.flips[step][rows]
            images = crop_flip(images, offsets, flips, aug.crop_padding)
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
