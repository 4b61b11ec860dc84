"""Data sources, long-tailed subsets, splits and `tf.data` pipelines.

TensorFlow-only subpackage. Every source returns an `ImageData` (uint8
images, int64 labels, class names) held in memory; pipelines yield float32
images in the raw 0-255 range (the model normalises them, see
`channel_stats`).
"""

from keras_dlpa.data.augment import mixup
from keras_dlpa.data.augment import random_crop_flip
from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.image_data import from_arrays
from keras_dlpa.data.image_folder import load_image_folder
from keras_dlpa.data.long_tail import long_tailed_counts
from keras_dlpa.data.long_tail import long_tailed_indices
from keras_dlpa.data.long_tail import long_tailed_train_val
from keras_dlpa.data.long_tail import make_long_tailed
from keras_dlpa.data.pipeline import eval_pipeline
from keras_dlpa.data.pipeline import train_pipeline
from keras_dlpa.data.splits import split_train_val
from keras_dlpa.data.splits import stratified_split
from keras_dlpa.data.stats import channel_stats
from keras_dlpa.data.tfds_source import TESTED_TFDS_DATASETS
from keras_dlpa.data.tfds_source import load_tfds

__all__ = [
    "ImageData",
    "TESTED_TFDS_DATASETS",
    "channel_stats",
    "eval_pipeline",
    "from_arrays",
    "load_image_folder",
    "load_tfds",
    "long_tailed_counts",
    "long_tailed_indices",
    "long_tailed_train_val",
    "make_long_tailed",
    "mixup",
    "random_crop_flip",
    "split_train_val",
    "stratified_split",
    "train_pipeline",
]
