"""Data core (numpy/PIL), long-tailed subsets, splits and the executors.

Nothing here needs TensorFlow: sources (`load_image_folder`, `from_arrays`),
`ImageData`, the long-tailed profile, splits, channel statistics and the
per-epoch plans (`epoch_plan`) are numpy and PIL. The executors run the
plans with bit-identical batches: `grain_train_dataset` (grain, every
backend), `keras_dlpa.data.device_executor` (JAX accelerators) and the
tf.data executor `keras_dlpa.data.pipeline` (TensorFlow backend);
`train_dataset` picks one; each takes the run's `TrainingInput` (batch
size, seed, epochs, augmentation). `load_tfds` needs tensorflow-datasets.

The names below work on every backend without TensorFlow installed. The
tf.data executors are not in this namespace: import them from their
modules (`from keras_dlpa.data.pipeline import train_pipeline`,
`from keras_dlpa.data.streaming import tf_stream_dataset`), so that
`import keras_dlpa.data` never imports TensorFlow.

In-memory sources return an `ImageData` (uint8 images, int64 labels, class
names); streamed sources (`load_labelled_paths`, `load_tfds_records`)
return a `LabelledPaths` (paths and labels only; the splits and the
long-tailed profile work on both), decoded per batch by `streaming` from a
`StreamPlan`. Executors yield float32 images in the raw 0-255 range (the
model normalises them, see `channel_stats`). Images are decoded by
`keras_dlpa_serving.image_decode`, shared with the Keras-free ONNX client.
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
