"""Per-epoch plans of streamed (ImageNet-style) training, numpy only.

The streaming counterpart of `plan` (draws listed in docs/data.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_dlpa.checks import check_choice
from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number
from keras_dlpa.data.plan import steps_per_epoch

# Mixed into every streaming plan seed (differs from the CIFAR plan's).
_STREAM_PLAN = 0x5BD1E995
AUTO_AUGMENTS = ("none", "trivial")
NUM_MAGNITUDE_BINS = 31
NO_MIX, MIXUP, CUTMIX = 0, 1, 2


def check_augment_settings(
    auto_augment: str = "none",
    random_erasing: float = 0.0,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
) -> None:
    """A `ValueError` naming the first setting out of range."""
    check_choice("auto_augment", auto_augment, AUTO_AUGMENTS)
    check_number("random_erasing", random_erasing, 0, 1, closed=True)
    check_number("mixup_alpha", mixup_alpha, closed=True)
    check_number("cutmix_alpha", cutmix_alpha, closed=True)


@dataclasses.dataclass(frozen=True)
class StreamAugmentation:
    """Training augmentation of streamed images (ImageNet recipes).

    Args:
        image_size: output side `S` (square `S x S` crops).
        scale: area fraction range of the random-resized crop.
        ratio: aspect-ratio range (width / height) of the crop.
        flip: horizontal flip with probability 0.5.
        auto_augment: `"trivial"` (TrivialAugment wide) or `"none"`.
        random_erasing: probability of random erasing (0 disables it).
        mixup_alpha: mixup `Beta(alpha, alpha)`; 0 disables it.
        cutmix_alpha: cutmix `Beta(alpha, alpha)`; 0 disables it.
        num_ops: number of ops of the auto-augment op table (set by
            `image_ops`; part of the plan so it is pure).
    """

    image_size: int = 224
    scale: tuple = (0.08, 1.0)
    ratio: tuple = (3.0 / 4.0, 4.0 / 3.0)
    flip: bool = True
    auto_augment: str = "none"
    random_erasing: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    num_ops: int = 14

    def __post_init__(self):
        size = check_int("image_size", self.image_size, minimum=8)
        check_augment_settings(
            self.auto_augment,
            self.random_erasing,
            self.mixup_alpha,
            self.cutmix_alpha,
        )
        low, high = self.scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(
                "`scale` must be (low, high) with 0 < low <= high <= 1. "
                f"Received: scale={self.scale!r}"
            )
        low, high = self.ratio
        if not 0.0 < low <= high:
            raise ValueError(
                "`ratio` must be (low, high) with 0 < low <= high. "
                f"Received: ratio={self.ratio!r}"
            )
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "scale", tuple(map(float, self.scale)))
        object.__setattr__(self, "ratio", tuple(map(float, self.ratio)))

    @property
    def soft_labels(self) -> bool:
        """Whether batches carry soft `(B, c)` labels (mixup or cutmix)."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


@dataclasses.dataclass(frozen=True)
class StreamPlan:
    """Batches of one epoch and all their draws (`S` steps, `B` images).

    Attributes:
        indices: int64 `(S, B)` image indices.
        crops: float32 `(S, B, 4)`: area fraction, log aspect, x, y.
        flips: bool `(S, B)`.
        ops: int8 `(S, B)` auto-augment op index (-1: none).
        magnitudes: float32 `(S, B)` signed magnitude in `[-1, 1]`.
        erase: bool `(S, B)` random erasing on/off.
        erase_boxes: float32 `(S, B, 4)`: area fraction, log aspect, x, y.
        mix: int8 `(S,)`: `NO_MIX`, `MIXUP` or `CUTMIX`.
        lam: float32 `(S,)` weight of the image itself (1 without mixing).
        partners: int64 `(S, B)` partner position in the batch.
        boxes: int32 `(S, 4)` cutmix box `(top, left, bottom, right)`.
    """

    indices: np.ndarray
    crops: np.ndarray
    flips: np.ndarray
    ops: np.ndarray
    magnitudes: np.ndarray
    erase: np.ndarray
    erase_boxes: np.ndarray
    mix: np.ndarray
    lam: np.ndarray
    partners: np.ndarray
    boxes: np.ndarray


def _box_draws(rng, shape, scale, ratio) -> np.ndarray:
    area = rng.uniform(scale[0], scale[1], size=shape)
    log_ratio = rng.uniform(np.log(ratio[0]), np.log(ratio[1]), size=shape)
    xy = rng.random(shape + (2,))
    return np.concatenate(
        [area[..., None], log_ratio[..., None], xy], axis=-1
    ).astype(np.float32)


def box_from_draw(draw, height: int, width: int) -> tuple[int, int, int, int]:
    """`(top, left, h, w)` in an `H x W` image of a draw `(area fraction,
    log aspect, x, y)`; a box too large is shrunk (aspect kept) to fit."""
    area = float(draw[0]) * height * width
    aspect = float(np.exp(draw[1]))
    w = np.sqrt(area * aspect)
    h = np.sqrt(area / aspect)
    shrink = min(1.0, width / w, height / h)
    w = int(min(width, max(1, round(w * shrink))))
    h = int(min(height, max(1, round(h * shrink))))
    top = int(float(draw[3]) * (height - h + 1))
    left = int(float(draw[2]) * (width - w + 1))
    return min(top, height - h), min(left, width - w), h, w


def stream_epoch_plan(
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    augmentation: StreamAugmentation,
) -> StreamPlan:
    """The plan of epoch `epoch`: a pure function of `(seed, epoch)`.

    Draws, in order: permutation, crops, flips, auto-augment ops and
    magnitudes, erasing, batch mixing; disabled augmentations draw nothing.
    """
    check_int("seed", seed, minimum=0)
    check_int("epoch", epoch, minimum=0)
    aug = augmentation
    num = int(np.asarray(labels).shape[0])
    steps = steps_per_epoch(num, batch_size)
    shape = (steps, int(batch_size))
    rng = np.random.default_rng([int(seed), int(epoch), _STREAM_PLAN])
    indices = rng.permutation(num)[: steps * batch_size].reshape(shape)
    crops = _box_draws(rng, shape, aug.scale, aug.ratio)
    flips = rng.random(shape) < 0.5 if aug.flip else np.zeros(shape, bool)
    if aug.auto_augment == "trivial":
        ops = rng.integers(0, aug.num_ops, size=shape).astype(np.int8)
        bins = rng.integers(0, NUM_MAGNITUDE_BINS, size=shape)
        signs = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
        magnitudes = (signs * bins / (NUM_MAGNITUDE_BINS - 1)).astype(
            np.float32
        )
    else:
        ops = np.full(shape, -1, np.int8)
        magnitudes = np.zeros(shape, np.float32)
    if aug.random_erasing > 0:
        erase = rng.random(shape) < aug.random_erasing
        erase_boxes = _box_draws(rng, shape, (0.02, 0.33), (0.3, 3.3))
    else:
        erase = np.zeros(shape, bool)
        erase_boxes = np.zeros(shape + (4,), np.float32)
    mix = np.full((steps,), NO_MIX, np.int8)
    lam = np.ones((steps,), np.float32)
    partners = np.broadcast_to(np.arange(batch_size), shape).copy()
    boxes = np.zeros((steps, 4), np.int32)
    mixes = ((MIXUP, aug.mixup_alpha), (CUTMIX, aug.cutmix_alpha))
    kinds = [(kind, alpha) for kind, alpha in mixes if alpha > 0]
    if kinds:
        choice = rng.integers(0, len(kinds), size=steps)
        alphas = np.array([a for _, a in kinds])[choice]
        mix = np.array([k for k, _ in kinds], np.int8)[choice]
        lam = rng.beta(alphas, alphas).astype(np.float32)
        partners = np.argsort(rng.random(shape), axis=1)
        centres = rng.random((steps, 2))
        size = aug.image_size
        for step in np.flatnonzero(mix == CUTMIX):
            cut = int(size * np.sqrt(1.0 - lam[step]))
            cy, cx = (centres[step] * size).astype(int)
            top, bottom = max(cy - cut // 2, 0), min(cy + cut // 2, size)
            left, right = max(cx - cut // 2, 0), min(cx + cut // 2, size)
            boxes[step] = (top, left, bottom, right)
            area = (bottom - top) * (right - left)
            lam[step] = np.float32(1.0 - area / (size * size))
    draws = (indices.astype(np.int64), crops, flips, ops, magnitudes, erase)
    mixing = (mix, lam, partners.astype(np.int64), boxes)
    return StreamPlan(*draws, erase_boxes, *mixing)
