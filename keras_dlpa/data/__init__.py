"""Data sources, long-tailed subsets, splits and `tf.data` pipelines.

The sources and pipelines need TensorFlow; `image_data`, `long_tail`,
`splits` and `stats` are numpy-only, and names are imported lazily, so
`keras_dlpa.data.splits` works on a machine without TensorFlow.

Every source returns an `ImageData` (uint8 images, int64 labels, class
names) held in memory; pipelines yield float32 images in the raw 0-255
range (the model normalises them, see `channel_stats`).
"""

import importlib

_EXPORTS = {
    "ImageData": "image_data",
    "from_arrays": "image_data",
    "mixup": "augment",
    "random_crop_flip": "augment",
    "load_image_folder": "image_folder",
    "long_tailed_counts": "long_tail",
    "long_tailed_indices": "long_tail",
    "long_tailed_train_val": "long_tail",
    "make_long_tailed": "long_tail",
    "epoch_keyed_pipeline": "pipeline",
    "eval_pipeline": "pipeline",
    "train_pipeline": "pipeline",
    "split_train_val": "splits",
    "stratified_split": "splits",
    "channel_stats": "stats",
    "TESTED_TFDS_DATASETS": "tfds_source",
    "load_tfds": "tfds_source",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)


def __dir__():
    return __all__
