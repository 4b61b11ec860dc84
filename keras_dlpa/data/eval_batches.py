"""In-order evaluation batches of any data source, for every backend."""

from __future__ import annotations

import math

import keras

from keras_dlpa.checks import check_int
from keras_dlpa.data.source import DataSource


class EvalBatches(keras.utils.PyDataset):
    """Images of a data source in order, `batch_size` at a time.

    Yields float32 0-255 `(B, H, W, 3)` batches (the last may be partial)
    of `data.eval_images`, without Keras workers (safe on every backend).
    Use with `model.predict` and `data.labels`.

    Args:
        data: an `ImageData` or a `LabelledPaths`.
        batch_size: images per batch.
        image_size: output side of streamed images (in-memory images
            keep their size).
    """

    def __init__(self, data, batch_size: int = 256, image_size: int = 224):
        super().__init__()
        if not isinstance(data, DataSource):
            raise TypeError(
                "`data` must be a `keras_dlpa.data.ImageData` or "
                f"`LabelledPaths`. Received: {type(data).__name__}."
            )
        self.data = data
        self.batch_size = check_int("batch_size", batch_size)
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(index)
        start = index * self.batch_size
        stop = min(start + self.batch_size, len(self.data))
        return (self.data.eval_images(start, stop, self.image_size),)
