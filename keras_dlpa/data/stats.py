"""Per-channel statistics of training images."""

from __future__ import annotations

import numpy as np


def channel_stats(
    images: np.ndarray, chunk_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation on the raw 0-255 scale.

    Feed the result to the model's normalisation layer: the pipelines of
    `keras_dlpa.data` yield raw 0-255 float32 images and the model
    normalises them with `(x - mean) / std`. Two passes over `chunk_size`
    images at a time with float64 accumulation, so no float copy of the
    whole set is made. The standard deviation is the population one
    (ddof=0) over all pixels of a channel.

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
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be >= 1. Received {chunk_size}.")
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
