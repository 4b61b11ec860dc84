"""`DataSource`: what the runner asks of a labelled image set, the
in-memory `ImageData` or the streamed `LabelledPaths`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from typing import runtime_checkable

import numpy as np


@runtime_checkable
class DataSource(Protocol):
    """A labelled image set that can feed training and evaluation.

    Attributes:
        labels: int64 `(N,)` labels in `[0, num_classes)`.
        class_names: one name per class, in label order.
        skipped_files: files of the source left out as unreadable.
    """

    labels: np.ndarray
    class_names: list[str]
    skipped_files: tuple

    @property
    def num_classes(self) -> int: ...

    def __len__(self) -> int: ...

    def class_counts(self) -> np.ndarray:
        """Images per class, int64 `(num_classes,)`."""

    def subset(self, indices: Sequence[int] | np.ndarray) -> DataSource:
        """The entries at `indices` (same class names)."""

    def augmentation(self, settings):
        """This kind of data's augmentation of `settings` (config fields by
        name, `ExperimentConfig.flat()`)."""

    def input_statistics(self, image_size: int):
        """`(mean, std, image_shape)` the model normalises its input with."""

    def train_dataset(
        self,
        training_input,
        executor: str = "auto",
        shard=None,
        workers: int | None = None,
    ):
        """`(dataset, steps_per_epoch)` of `training_input` (this
        process's rows with a `shard`; `workers`: streamed decoding)."""

    def eval_images(self, start: int, stop: int, image_size: int):
        """float32 0-255 `(stop - start, H, W, 3)` as evaluated."""
