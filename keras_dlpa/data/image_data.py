"""The in-memory image container every data source returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from keras_dlpa.checks import check_int


class _LabelledSet:
    """What `ImageData` and `LabelledPaths` share: labels, class names."""

    def _init_labels(self, name: str, items, count) -> np.ndarray:
        """Checks and stores `class_names` and `skipped_files`; returns the
        checked labels."""
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                "`labels` must be a 1-D integer array of shape (N,). Received "
                f"shape {labels.shape} and dtype {labels.dtype}."
            )
        if count(items) != count(labels):
            raise ValueError(
                f"`{name}` and `labels` must have the same length. Received "
                f"{count(items)} {name} and {count(labels)} labels."
            )
        class_names = [str(c) for c in self.class_names]
        if not class_names:
            raise ValueError("`class_names` must not be empty.")
        check_labels(labels, len(class_names))
        object.__setattr__(self, "class_names", class_names)
        skipped = tuple(str(path) for path in self.skipped_files)
        object.__setattr__(self, "skipped_files", skipped)
        return labels

    @property
    def num_classes(self) -> int:
        """Number of classes, `len(class_names)`."""
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> np.ndarray:
        """Number of images per class, int64 array of shape `(num_classes,)`."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def subset(self, indices: Sequence[int] | np.ndarray):
        """The entries at `indices` (everything else kept)."""
        indices = np.asarray(indices, dtype=np.int64)
        items = getattr(self, self._ITEMS)[indices]
        labels = self.labels[indices]
        return dataclasses.replace(self, **{self._ITEMS: items}, labels=labels)


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData(_LabelledSet):
    """An in-memory labelled image set: uint8 images, int64 labels, names.

    Args:
        images: uint8 array of shape `(N, H, W, 3)`, raw 0-255 pixels.
        labels: int64 array of shape `(N,)` with values in
            `[0, len(class_names))`.
        class_names: one name per class, in label order.
        skipped_files: paths of the source's files left out as unreadable
            (`skip_bad_images=True`).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    skipped_files: tuple = ()
    _ITEMS = "images"

    def __post_init__(self):
        images = np.asarray(self.images)
        if images.dtype != np.uint8:
            raise ValueError(
                f"`images` must have dtype uint8 (raw 0-255 pixels). Received "
                f"dtype {images.dtype}. Convert with `.astype('uint8')` after "
                "clipping to [0, 255]."
            )
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                "`images` must have shape (N, H, W, 3). Received shape "
                f"{images.shape}."
            )
        labels = self._init_labels("images", images, len)
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """`(H, W, 3)` of every image."""
        return tuple(self.images.shape[1:])

    # The `keras_dlpa.data.source.DataSource` interface.

    def augmentation(self, settings):
        """The `plan.Augmentation` of `settings` (config fields by name,
        `ExperimentConfig.flat()`)."""
        from keras_dlpa.data.plan import Augmentation

        return Augmentation(
            settings["crop_padding"], settings["flip"], settings["mixup_alpha"]
        )

    def input_statistics(self, image_size: int | None = None):
        """The images' channel mean and std, and their shape."""
        from keras_dlpa.data.stats import channel_stats

        mean, std = channel_stats(self.images)
        return mean, std, self.image_shape

    def train_dataset(
        self, training_input, executor="auto", shard=None, workers=None
    ):
        """`executor.train_dataset` of these images."""
        from keras_dlpa.data.executor import train_dataset

        return train_dataset(self, training_input, executor, shard)

    def eval_images(self, start: int, stop: int, image_size=None):
        """float32 images `start..stop - 1`, as they are."""
        return self.images[start:stop].astype(np.float32)


def check_kind(data, kind: type, hint: str = "") -> None:
    """A `TypeError` unless `data` is a `kind`."""
    if not isinstance(data, kind):
        raise TypeError(
            f"`data` must be a `keras_dlpa.data.{kind.__name__}`{hint}. "
            f"Received: {type(data).__name__}."
        )


def check_labels(labels: np.ndarray, num_classes: int) -> None:
    """Raises `ValueError` unless every label is in `[0, num_classes)`."""
    if labels.size == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"Labels must be in [0, {num_classes}) for {num_classes} classes. "
            f"Received labels in [{low}, {high}]. Check `num_classes` or "
            "`class_names`, or remap the labels."
        )


def from_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> ImageData:
    """Wraps in-memory numpy arrays as an `ImageData` after validating them.

    Args:
        images: uint8 array `(N, H, W, 3)`. Grayscale `(N, H, W)` or
            `(N, H, W, 1)` is repeated to 3 channels.
        labels: integer array `(N,)` (or `(N, 1)`, flattened).
        class_names: names in label order. Defaults to `"0"`, `"1"`, ...
        num_classes: number of classes when `class_names` is not given.
            Defaults to `max(labels) + 1`.

    Returns:
        An `ImageData`.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if class_names is None:
        if num_classes is None:
            if labels.size == 0:
                raise ValueError(
                    "Pass `class_names` or `num_classes` for an empty set."
                )
            num_classes = int(np.max(labels)) + 1
        num_classes = check_int("num_classes", num_classes)
        class_names = [str(i) for i in range(num_classes)]
    elif num_classes is not None and num_classes != len(class_names):
        raise ValueError(
            f"`num_classes` ({num_classes}) does not match the "
            f"{len(class_names)} entries of `class_names`."
        )
    return ImageData(images, labels, list(class_names))
