"""Streaming executors: decode + augment each planned batch of a
`LabelledPaths` when needed (grain processes or tf.data threads, the same
batches bit for bit; see docs/data.md)."""

from __future__ import annotations

import os

import numpy as np

from keras_dlpa.data.grain_executor import import_grain
from keras_dlpa.data.image_data import check_kind
from keras_dlpa.data.image_ops import train_image
from keras_dlpa.data.input_shard import WHOLE_BATCH
from keras_dlpa.data.input_shard import InputShard
from keras_dlpa.data.labelled_paths import LabelledPaths
from keras_dlpa.data.plan import TrainingInput
from keras_dlpa.data.plan import steps_per_epoch
from keras_dlpa.data.stream_plan import CUTMIX
from keras_dlpa.data.stream_plan import MIXUP
from keras_dlpa.data.stream_plan import StreamAugmentation
from keras_dlpa.data.stream_plan import stream_epoch_plan
from keras_dlpa_serving.image_decode import BadImageError


def default_workers() -> int:
    """Decode processes: the usable CPU cores, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


class StreamBatchMaker:
    """`maker(index) -> (images, labels)`: batch `index % S` of epoch
    `index // S`.

    Images are float32 0-255 `(b, S, S, 3)`; labels int32 `(b,)`, or
    float32 `(b, c)` with mixup/cutmix. With a `shard` only its rows
    (`b = B / shard.count`, plus the partner rows they mix with) are
    decoded. Picklable, for grain worker processes.
    """

    def __init__(
        self,
        data: LabelledPaths,
        batch_size: int,
        seed: int,
        augmentation: StreamAugmentation,
        shard: InputShard | None = None,
    ):
        self.data = data
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.augmentation = augmentation
        self.shard = shard or WHOLE_BATCH
        self.local_batch_size = self.shard.local_batch_size(batch_size)
        self.steps = steps_per_epoch(len(data), batch_size)
        self._plans = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_plans"] = {}
        return state

    def plan(self, epoch: int):
        if epoch not in self._plans:
            if len(self._plans) >= 2:
                self._plans.pop(min(self._plans))
            args = (self.batch_size, self.seed, epoch, self.augmentation)
            self._plans[epoch] = stream_epoch_plan(self.data.labels, *args)
        return self._plans[epoch]

    def __call__(self, index: int):
        epoch, step = divmod(int(index), self.steps)
        return self.batch(self.plan(epoch), step)

    def _decode(self, plan, step: int, positions) -> np.ndarray:
        """uint8 `(n, S, S, 3)`: the augmented images at `positions`."""
        size = self.augmentation.image_size
        images = np.empty((len(positions), size, size, 3), np.uint8)
        draws = (plan.crops, plan.flips, plan.ops, plan.magnitudes)
        draws += (plan.erase, plan.erase_boxes)  # `train_image`'s order
        for j, position in enumerate(positions):
            index = plan.indices[step, position]
            image_draws = (draw[step, position] for draw in draws)
            try:
                encoded = self.data.read(index)
                images[j] = train_image(encoded, size, *image_draws)
            except (BadImageError, OSError) as error:  # names the file
                raise self.data.decode_error(index, error) from None
        return images

    def batch(self, plan, step: int):
        aug = self.augmentation
        own = self.shard.positions(self.batch_size)
        indices = plan.indices[step]
        if not aug.soft_labels:
            images = self._decode(plan, step, own)
            labels = self.data.labels[indices[own]].astype(np.int32)
            return images.astype(np.float32), labels
        partners = plan.partners[step][own]
        # Each image of the global batch this process needs, decoded once.
        needed = np.union1d(own, partners)
        decoded = self._decode(plan, step, needed).astype(np.float32)
        images = decoded[np.searchsorted(needed, own)]
        other = decoded[np.searchsorted(needed, partners)]
        eye = np.eye(self.data.num_classes, dtype=np.float32)
        onehot = eye[self.data.labels[indices[own]]]
        other_onehot = eye[self.data.labels[indices[partners]]]
        lam = plan.lam[step]
        rest = np.float32(1.0) - lam
        if plan.mix[step] == MIXUP:
            images = lam * images + rest * other
        elif plan.mix[step] == CUTMIX:
            top, left, bottom, right = plan.boxes[step]
            images[:, top:bottom, left:right] = other[:, top:bottom, left:right]
        onehot = lam * onehot + rest * other_onehot
        return images, onehot


def _batch_maker(data, training_input: TrainingInput, shard):
    """The `StreamBatchMaker` of `training_input`'s plans."""
    check_kind(data, LabelledPaths)
    t, aug = training_input, training_input.augmentation_or(StreamAugmentation)
    return StreamBatchMaker(data, t.batch_size, t.seed, aug, shard)


def _index_range(training_input: TrainingInput, steps: int):
    """Dataset elements `(first, stop)` of epochs `initial_epoch..`."""
    return training_input.initial_epoch * steps, training_input.epochs * steps


def _mark_flags_parsed():
    # grain 0.2.17/0.2.18 `mp_prefetch` reads absl flags.
    try:
        from absl import flags
    except ImportError:  # pragma: no cover
        return
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _numpy_backend_workers(iterable):
    """Spawns the decode workers with `KERAS_BACKEND=numpy` (docs/data.md)."""
    grain = import_grain()

    class _Iterator(grain.DatasetIterator):
        def __init__(self, parent):
            super().__init__(parent)
            self._started = False

        def __next__(self):
            if self._started:
                return next(self._parent)
            previous = os.environ.get("KERAS_BACKEND")
            os.environ["KERAS_BACKEND"] = "numpy"
            try:
                return next(self._parent)
            finally:
                self._started = True
                if previous is None:
                    os.environ.pop("KERAS_BACKEND", None)
                else:
                    os.environ["KERAS_BACKEND"] = previous

        def get_state(self):
            return self._parent.get_state()

        def set_state(self, state):
            self._parent.set_state(state)

    class _Dataset(grain.IterDataset):
        def __iter__(self):
            return _Iterator(self._parent.__iter__())

    return _Dataset(iterable)


def grain_stream_dataset(
    data: LabelledPaths,
    training_input: TrainingInput,
    workers: int | None = None,
    shard: InputShard | None = None,
):
    """Planned, streamed training batches of epochs `initial_epoch..`.

    Args:
        data: the training `LabelledPaths`.
        training_input: the `plan.TrainingInput`.
        workers: decode processes (`None`: one per core, at most 8; 0: this
            process). Spawned: the script needs a `__main__` guard.
        shard: decode only this process's rows of each global batch.

    Returns:
        `(dataset, steps_per_epoch)`: a `grain.IterDataset`.
    """
    grain = import_grain()

    maker = _batch_maker(data, training_input, shard)
    steps = maker.steps
    first_stop = _index_range(training_input, steps)
    dataset = grain.MapDataset.range(*first_stop).map(maker)
    workers = default_workers() if workers is None else int(workers)
    options = grain.ReadOptions(num_threads=1, prefetch_buffer_size=2)
    iterable = dataset.to_iter_dataset(options)
    if workers > 0:
        _mark_flags_parsed()
        options = grain.MultiprocessingOptions(num_workers=workers)
        iterable = _numpy_backend_workers(iterable.mp_prefetch(options))
    return iterable, steps


def tf_stream_dataset(
    data: LabelledPaths,
    training_input: TrainingInput,
    shard: InputShard | None = None,
):
    """The same batches as `grain_stream_dataset`, in a tf.data `map`."""
    import tensorflow as tf

    maker = _batch_maker(data, training_input, shard)
    steps = maker.steps
    size = maker.augmentation.image_size
    soft = maker.augmentation.soft_labels
    local = maker.local_batch_size
    types = (tf.float32, tf.float32 if soft else tf.int32)
    label_shape = [local, data.num_classes] if soft else [local]

    def load(index):
        images, labels = tf.numpy_function(maker, [index], types)
        images.set_shape([local, size, size, 3])
        labels.set_shape(label_shape)
        return images, labels

    dataset = (
        tf.data.Dataset.range(*_index_range(training_input, steps))
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset, steps


def stream_train_dataset(
    data: LabelledPaths,
    training_input: TrainingInput,
    executor: str = "grain",
    workers: int | None = None,
    shard: InputShard | None = None,
):
    """`grain_stream_dataset` (default) or `tf_stream_dataset`."""
    if executor == "tf":
        return tf_stream_dataset(data, training_input, shard)
    return grain_stream_dataset(data, training_input, workers, shard)
