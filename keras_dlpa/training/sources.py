"""Data of a run: the source (TFDS, image folder, list file, numpy), then
the validation split and the long-tailed profile (numpy, no TensorFlow)."""

from __future__ import annotations

import numpy as np

from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.image_data import from_arrays
from keras_dlpa.data.image_folder import load_image_folder
from keras_dlpa.data.long_tail import long_tailed_train_val
from keras_dlpa.training.config import ExperimentConfig


def _load_streamed(config: ExperimentConfig):
    """`(train, val, test)` as `LabelledPaths` (nothing decoded)."""
    from keras_dlpa.data.labelled_paths import load_labelled_paths
    from keras_dlpa.data.labelled_paths import load_tfds_records

    source = config.source
    val = test = None
    if source == "tfds":
        kwargs = dict(
            data_dir=config.data_dir,
            manual_dir=config.manual_dir,
            download=config.download,
        )
        train = load_tfds_records(config.dataset, "train", **kwargs)
        if config.test_split:
            test = load_tfds_records(
                config.dataset, config.test_split, **kwargs
            )
        return train, val, test
    if source == "image_dir":
        if not config.image_dir:
            raise ValueError("source='image_dir' needs `image_dir`.")
        train = load_labelled_paths(config.image_dir)
    else:
        if not config.train_list:
            raise ValueError(
                "source='image_list' needs `train_list` (an image list file "
                "or a class-folder directory)."
            )
        train = load_labelled_paths(config.train_list, config.image_root)
    names = train.class_names
    if config.val_list:
        val = load_labelled_paths(config.val_list, config.image_root, names)
    if config.test_list:
        test = load_labelled_paths(config.test_list, config.image_root, names)
    for part, name in ((val, "val_list"), (test, "test_list")):
        if part is not None and part.class_names != names:
            raise ValueError(
                f"The classes of `{name}` differ from the training classes "
                f"({part.class_names[:3]}... vs {names[:3]}...)."
            )
    return train, val, test


def _select(parts, class_subset):
    from keras_dlpa.data.labelled_paths import select_classes

    subset = int(class_subset) if class_subset.isdigit() else class_subset
    train = select_classes(parts[0], subset)
    return [train] + [
        None if part is None else select_classes(part, train.class_names)
        for part in parts[1:]
    ]


def _cap_per_class(data: ImageData, limit: int, seed: int) -> ImageData:
    rng = np.random.RandomState(seed)
    kept = []
    for k in range(data.num_classes):
        idx = np.flatnonzero(data.labels == k)
        kept.append(np.sort(rng.permutation(idx)[:limit]))
    return data.subset(np.sort(np.concatenate(kept)))


def load_data(
    config: ExperimentConfig,
) -> tuple[ImageData, ImageData | None, ImageData | None]:
    """Returns `(train_full, val_or_None, test_or_None)` of the source.

    In memory (`ImageData`), or `LabelledPaths` with `config.streaming`
    (always for list files). `config.class_subset` keeps a subset of the
    classes (renumbered) in every part.
    """
    if config.streaming:
        parts = _load_streamed(config)
        if config.class_subset:
            parts = _select(parts, config.class_subset)
        return tuple(parts)
    if config.class_subset:
        raise ValueError(
            "`class_subset` needs `streaming=True` (a streamed source)."
        )
    source = config.source
    val = test = None
    if source == "tfds":
        kwargs = dict(
            data_dir=config.data_dir,
            manual_dir=config.manual_dir,
            download=config.download,
        )
        from keras_dlpa.data.tfds_source import load_tfds

        train = load_tfds(config.dataset, "train", **kwargs)
        if config.test_split:
            test = load_tfds(config.dataset, config.test_split, **kwargs)
    elif source == "image_dir":
        if not config.image_dir:
            raise ValueError("source='image_dir' needs `image_dir`.")
        train = load_image_folder(config.image_dir)
    else:
        if not config.numpy_path:
            raise ValueError("source='numpy' needs `numpy_path` (.npz).")
        with np.load(config.numpy_path) as arrays:
            names = (
                arrays["class_names"].tolist()
                if ("class_names" in arrays)
                else None
            )
            train = _from_numpy(arrays["images"], arrays["labels"], names)
            if "test_images" in arrays:
                test = _from_numpy(
                    arrays["test_images"],
                    arrays["test_labels"],
                    train.class_names,
                )
    return train, val, test


def _from_numpy(images, labels, names):
    return from_arrays(images, labels, class_names=names)


def make_splits(
    data: ImageData, config: ExperimentConfig, val: ImageData | None = None
) -> tuple[ImageData, ImageData]:
    """`train_per_class` cap, then `long_tailed_train_val` (the split rule).

    The validation split is stratified (`val_fraction` of each class,
    seeded) unless `val` is given; then the long-tailed profile with
    `imbalance` (see `keras_dlpa.data.long_tailed_train_val`).
    """
    if config.train_per_class:
        data = _cap_per_class(data, int(config.train_per_class), config.seed)
    return long_tailed_train_val(
        data, config.imbalance, config.val_fraction, config.seed, val=val
    )
