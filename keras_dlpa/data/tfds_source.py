"""TensorFlow Datasets source for image-classification sets."""

from __future__ import annotations

import os

import numpy as np

from keras_dlpa.data.image_data import ImageData

TESTED_TFDS_DATASETS = ("cifar10", "cifar100", "svhn_cropped", "stl10")


def load_tfds(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> ImageData:
    """Loads a TFDS image-classification split fully into memory.

    Any builder with an `(H, W, 3)` `image` and a `label` class feature
    works (tested: `TESTED_TFDS_DATASETS`); class names are the `label`
    feature's. Offline: put the original archive (e.g.
    `cifar-100-binary.tar.gz`) in `manual_dir`, later pass `download=False`.

    Args:
        name: TFDS dataset name, e.g. `"cifar100"`.
        split: TFDS split, e.g. `"train"` or `"train[:90%]"`.
        data_dir: where TFDS stores prepared data.
        manual_dir: directory with manually downloaded archives.
        download: download and prepare if needed.

    Returns:
        An `ImageData` with uint8 images `(N, H, W, 3)`.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "Loading TensorFlow Datasets needs the `datasets` extra: "
            'pip install "keras-dlpa[datasets]"'
        ) from error
    data_dir = None if data_dir is None else os.fspath(data_dir)
    builder = tfds.builder(name, data_dir=data_dir)
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise ValueError(
            f"TFDS dataset {name!r} must have `image` and `label` features; "
            f"it has {sorted(features.keys())}."
        )
    image_shape = tuple(features["image"].shape)
    if len(image_shape) != 3 or image_shape[-1] != 3:
        raise ValueError(
            f"TFDS dataset {name!r} has image shape {image_shape}; expected "
            "RGB images (H, W, 3)."
        )
    if download:
        config = tfds.download.DownloadConfig(
            manual_dir=None if manual_dir is None else os.fspath(manual_dir)
        )
        builder.download_and_prepare(download_config=config)
    # Read after preparation: CIFAR builders fill the names from the archive.
    class_names = list(builder.info.features["label"].names)
    # Batches rather than `batch_size=-1`, which needs the split size in the
    # metadata (unknown for mocked data) and one huge tensor.
    try:
        dataset = builder.as_dataset(
            split=split, as_supervised=True, batch_size=4096
        )
    except AssertionError as error:  # TFDS signals "not prepared" this way.
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r}."
            " Pass `download=True` (with `manual_dir` holding the original "
            "archive when offline), or the `data_dir` where it was prepared."
        ) from error
    images, labels = [], []
    for batch_images, batch_labels in tfds.as_numpy(dataset):
        images.append(batch_images)
        labels.append(batch_labels)
    if not images:
        raise ValueError(f"TFDS split {split!r} of {name!r} is empty.")
    return ImageData(
        np.concatenate(images).astype(np.uint8, copy=False),
        np.concatenate(labels).astype(np.int64, copy=False),
        class_names,
    )
