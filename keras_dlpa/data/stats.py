"""Per-channel statistics of training images."""

from __future__ import annotations

import numpy as np

from keras_dlpa.checks import check_int


def channel_stats(
    images: np.ndarray, chunk_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std (ddof=0) on the 0-255 scale,
    for the model's `(x - mean) / std`; two float64 passes over
    `chunk_size` images at a time.

    Args:
        images: array `(N, H, W, C)`, typically uint8 training images.
        chunk_size: images converted to float64 at a time.

    Returns:
        `(mean, std)`, two float64 arrays of shape `(C,)`.

    Example:

    >>> x = np.zeros((2, 4, 4, 3), "uint8"); x[1] = 255
    >>> [v.tolist() for v in channel_stats(x)]
    [[127.5, 127.5, 127.5], [127.5, 127.5, 127.5]]
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            "`images` must be a non-empty array of shape (N, H, W, C). "
            f"Received shape {images.shape}."
        )
    check_int("chunk_size", chunk_size)
    channels = images.shape[-1]
    count = images.shape[0] * images.shape[1] * images.shape[2]
    total = np.zeros((channels,), np.float64)
    for start in range(0, images.shape[0], chunk_size):
        chunk = images[start : start + chunk_size].astype(np.float64)
        total += chunk.sum(axis=(0, 1, 2))
    mean = total / count
    squares = np.zeros((channels,), np.float64)
    for start in range(0, images.shape[0], chunk_size):
        chunk = images[start : start + chunk_size].astype(np.float64)
        squares += np.square(chunk - mean).sum(axis=(0, 1, 2))
    return mean, np.sqrt(squares / count)
