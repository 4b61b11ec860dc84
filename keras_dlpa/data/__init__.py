"""Data core (numpy/PIL; no TensorFlow import): sources, `ImageData` and
`LabelledPaths`, long-tailed subsets, splits, epoch plans and executors.

The tf.data executors are imported from their modules
(`keras_dlpa.data.pipeline`, `keras_dlpa.data.streaming`); see docs/data.md.
"""

from keras_dlpa.data.eval_batches import EvalBatches
from keras_dlpa.data.executor import resolve_executor
from keras_dlpa.data.executor import train_dataset
from keras_dlpa.data.grain_executor import grain_train_dataset
from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.image_data import from_arrays
from keras_dlpa.data.image_folder import extract_archive
from keras_dlpa.data.image_folder import list_image_folder
from keras_dlpa.data.image_folder import load_image_folder
from keras_dlpa.data.image_folder import read_image_list
from keras_dlpa.data.input_shard import InputShard
from keras_dlpa.data.labelled_paths import LabelledPaths
from keras_dlpa.data.labelled_paths import load_labelled_paths
from keras_dlpa.data.labelled_paths import load_tfds_records
from keras_dlpa.data.labelled_paths import select_classes
from keras_dlpa.data.long_tail import long_tailed_counts
from keras_dlpa.data.long_tail import long_tailed_indices
from keras_dlpa.data.long_tail import long_tailed_train_val
from keras_dlpa.data.long_tail import make_long_tailed
from keras_dlpa.data.plan import Augmentation
from keras_dlpa.data.plan import BatchMaker
from keras_dlpa.data.plan import EpochPlan
from keras_dlpa.data.plan import TrainingInput
from keras_dlpa.data.plan import epoch_plan
from keras_dlpa.data.plan import steps_per_epoch
from keras_dlpa.data.splits import split_train_val
from keras_dlpa.data.splits import stratified_split
from keras_dlpa.data.stats import channel_stats
from keras_dlpa.data.stream_plan import StreamAugmentation
from keras_dlpa.data.stream_plan import StreamPlan
from keras_dlpa.data.stream_plan import stream_epoch_plan
from keras_dlpa.data.streaming import StreamBatchMaker
from keras_dlpa.data.streaming import grain_stream_dataset
from keras_dlpa.data.streaming import stream_train_dataset
from keras_dlpa.data.tfds_source import TESTED_TFDS_DATASETS
from keras_dlpa.data.tfds_source import load_tfds

__all__ = [
    "Augmentation",
    "BatchMaker",
    "EpochPlan",
    "EvalBatches",
    "ImageData",
    "InputShard",
    "LabelledPaths",
    "StreamAugmentation",
    "StreamBatchMaker",
    "StreamPlan",
    "TESTED_TFDS_DATASETS",
    "TrainingInput",
    "channel_stats",
    "epoch_plan",
    "extract_archive",
    "from_arrays",
    "grain_stream_dataset",
    "grain_train_dataset",
    "list_image_folder",
    "load_image_folder",
    "load_labelled_paths",
    "load_tfds",
    "load_tfds_records",
    "long_tailed_counts",
    "long_tailed_indices",
    "long_tailed_train_val",
    "make_long_tailed",
    "read_image_list",
    "resolve_executor",
    "select_classes",
    "split_train_val",
    "steps_per_epoch",
    "stratified_split",
    "stream_epoch_plan",
    "stream_train_dataset",
    "train_dataset",
]
