"""`DataSource`: what the runner asks of a labelled image set.

Two classes implement it: the in-memory `ImageData` (CIFAR-sized sets,
decoded once) and the streamed `LabelledPaths` (paths and labels only,
decoded per batch). The splits and the long-tailed profile use only the
labels; the runner uses the rest, so it never needs to know which of the
two it holds.
"""

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
        """The training augmentation of this kind of data from `settings`
        (an `ExperimentConfig` or any object with its augmentation
        fields): `plan.Augmentation` in memory, `StreamAugmentation`
        streamed."""

    def input_statistics(self, image_size: int):
        """`(mean, std, image_shape)` the model normalises its input with."""

    def train_dataset(
        self,
        training_input,
        executor: str = "auto",
        shard=None,
        workers: int | None = None,
    ):
        """`(dataset, steps_per_epoch)`: the planned training batches of
        `training_input` (a `plan.TrainingInput`: batch size, seed, epochs
        `initial_epoch .. epochs - 1` and the augmentation of this kind of
        data), this process's rows of each with a `shard`; `workers`:
        decode processes of streamed data."""

    def eval_images(self, start: int, stop: int, image_size: int):
        """float32 `(stop - start, H, W, 3)`: entries `start..stop - 1`
        as evaluated (0-255)."""
