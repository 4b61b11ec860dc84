"""In-order evaluation batches of in-memory images, for every backend."""

from __future__ import annotations

import math

import keras
import numpy as np

from keras_dlpa.data.image_data import ImageData


class EvalBatches(keras.utils.PyDataset):
    """Images of an `ImageData` in order, `batch_size` at a time.

    Yields float32 `(B, H, W, 3)` images on the raw 0-255 scale (the last
    batch may be partial), converting one batch at a time, so no float
    copy of the whole set is made. Takes no workers (plain iteration in
    the calling thread), so it is safe on every backend. Use with
    `model.predict` and the labels `data.labels`.

    Args:
        data: the `ImageData`.
        batch_size: images per batch.
    """

    def __init__(self, data: ImageData, batch_size: int = 256):
        super().__init__()
        if not isinstance(data, ImageData):
            raise TypeError(
                "`data` must be a `keras_dlpa.data.ImageData`. Received: "
                f"{type(data).__name__}."
            )
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(
                "`batch_size` must be a positive integer. Received: "
                f"batch_size={batch_size!r}"
            )
        self.data = data
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(index)
        start = index * self.batch_size
        stop = start + self.batch_size
        return (self.data.images[start:stop].astype(np.float32),)
