"""Data core (numpy/PIL), long-tailed subsets, splits and two executors.

The data core needs no TensorFlow: sources (`load_image_folder`,
`from_arrays`), `ImageData`, the long-tailed profile, splits, channel
statistics and the per-epoch plans (`plan`). Two executors run the plans
with bit-identical batches: `pipeline` (tf.data, TensorFlow backend) and
`grain_executor` (grain, every backend); `train_dataset` picks one.
`load_tfds` needs tensorflow-datasets. Names are imported lazily, so
nothing here imports TensorFlow unless a TensorFlow part is used.

In-memory sources return an `ImageData` (uint8 images, int64 labels, class
names); streamed sources (`load_labelled_paths`, `load_tfds_records`)
return a `LabelledPaths` (paths and labels only; the splits and the
long-tailed profile work on both), decoded per batch by `streaming` from a
`StreamPlan`. Executors yield float32 images in the raw 0-255 range (the
model normalises them, see `channel_stats`).
"""

from keras_dlpa.lazy_exports import lazy_exports

_EXPORTS = {
    "ImageData": "image_data",
    "from_arrays": "image_data",
    "Augmentation": "plan",
    "BatchMaker": "plan",
    "EpochPlan": "plan",
    "epoch_plan": "plan",
    "steps_per_epoch": "plan",
    "EvalBatches": "eval_batches",
    "InputShard": "input_shard",
    "grain_train_dataset": "grain_executor",
    "resolve_executor": "executor",
    "train_dataset": "executor",
    "load_image_folder": "image_folder",
    "list_image_folder": "image_folder",
    "read_image_list": "image_folder",
    "extract_archive": "image_folder",
    "LabelledPaths": "labelled_paths",
    "load_labelled_paths": "labelled_paths",
    "load_tfds_records": "labelled_paths",
    "select_classes": "labelled_paths",
    "StreamAugmentation": "stream_plan",
    "StreamPlan": "stream_plan",
    "stream_epoch_plan": "stream_plan",
    "StreamBatchMaker": "streaming",
    "StreamEvalBatches": "streaming",
    "grain_stream_dataset": "streaming",
    "tf_stream_dataset": "streaming",
    "stream_train_dataset": "streaming",
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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
