"""`--strategy` on every backend: tf.distribute on TensorFlow, Keras'
`DataParallel` distribution on JAX, with the same global-batch rule."""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import keras

from keras_dlpa.data.input_shard import WHOLE_BATCH
from keras_dlpa.data.input_shard import InputShard

STRATEGIES = ("auto", "default", "mirrored", "multiworker")

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Distribution:
    """How a run is distributed.

    Attributes:
        name: the `--strategy` name.
        num_replicas: data-parallel replicas (devices) in sync, over all
            processes.
        tf_strategy: the `tf.distribute.Strategy` on TensorFlow, else None.
        input_shard: the rows of every global batch this process builds
            (`keras_dlpa.data.InputShard`): worker `k` of `W`
            (`tf.distribute` input pipeline id; `jax.process_index()` of
            `jax.process_count()`), or the whole batch on one host.
    """

    name: str
    num_replicas: int
    tf_strategy: object = None
    input_shard: InputShard = WHOLE_BATCH

    def scope(self):
        """Context to build and compile the model in."""
        if self.tf_strategy is not None:
            return self.tf_strategy.scope()
        return contextlib.nullcontext()

    @property
    def is_chief(self) -> bool:
        """Whether this is process 0 (or the only process)."""
        return self.input_shard.index == 0

    def training_input(self, make_dataset, batch_size: int, element_spec=None):
        """The training input for `fit`, built for this process's rows.

        Args:
            make_dataset: `make_dataset(shard) -> dataset` builds the
                planned batches, each holding the rows `shard.rows(B)`
                of its global batch of `B = batch_size` (a
                `tf.data.Dataset`, or a grain dataset).
            batch_size: the global batch size `B`.
            element_spec: `(images, labels)` `tf.TensorSpec`s of the local
                batches; needed only to feed a grain dataset to
                `MultiWorkerMirroredStrategy` (through
                `tf.data.Dataset.from_generator`).

        Returns:
            On one host, `make_dataset(whole batch)`. On TensorFlow with
            several workers, a `tf.distribute.DistributedDataset` from
            `strategy.distribute_datasets_from_function`: each worker's
            dataset yields its `B / W` rows, split into per-replica batches
            of `B / replicas` for its local replicas, and tf.distribute
            neither re-shards nor re-batches it (Keras `fit` takes it as
            is; `experimental_distribute_dataset`, which Keras would
            otherwise call, treats each element as a global batch and
            auto-shards it again). On JAX with several processes, the
            per-process dataset: `keras.distribution.DataParallel` was
            created with `auto_shard_dataset=False`, and Keras assembles
            the processes' local batches into the global batch with
            `jax.make_array_from_process_local_data` (process `k`'s rows
            are block `k`, the order of `jax.devices()` in the mesh).
        """
        shard = self.input_shard
        if shard.is_whole or self.tf_strategy is None:
            return make_dataset(shard)
        import tensorflow as tf

        def dataset_fn(context):
            given = InputShard(
                context.input_pipeline_id, context.num_input_pipelines
            )
            if given != shard:
                raise RuntimeError(
                    "tf.distribute gave this worker input pipeline "
                    f"{given.index} of {given.count}, but TF_CONFIG "
                    f"makes it worker {shard.index} of {shard.count}."
                )
            dataset = make_dataset(shard)
            if not isinstance(dataset, tf.data.Dataset):
                dataset = _grain_to_tf(dataset, element_spec)
            per_replica = context.get_per_replica_batch_size(batch_size)
            if per_replica != shard.local_batch_size(batch_size):
                dataset = dataset.rebatch(per_replica, drop_remainder=True)
            return dataset

        return self.tf_strategy.distribute_datasets_from_function(dataset_fn)


def _grain_to_tf(dataset, element_spec):
    """A grain dataset as a `tf.data.Dataset` with `element_spec`."""
    import tensorflow as tf

    if element_spec is None:
        raise ValueError(
            "A grain training dataset under MultiWorkerMirroredStrategy "
            "needs `element_spec` (the TensorSpecs of one local batch)."
        )

    return tf.data.Dataset.from_generator(
        lambda: iter(dataset), output_signature=tuple(element_spec)
    )


def _tf_input_shard(strategy) -> InputShard:
    """Worker `k` of `W` of a `MultiWorkerMirroredStrategy`.

    The chief is worker 0 and the workers follow it (the numbering of
    tf.distribute's input pipelines).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return WHOLE_BATCH
    cluster = resolver.cluster_spec().as_dict()
    chiefs = len(cluster.get("chief", []))
    workers = chiefs + len(cluster.get("worker", []))
    if resolver.task_type == "chief":
        return InputShard(0, workers)
    if resolver.task_type != "worker":
        raise ValueError(
            "Only 'chief' and 'worker' tasks train (they feed the global "
            f"batch). Received: task type {resolver.task_type!r} in "
            "TF_CONFIG."
        )
    return InputShard(chiefs + int(resolver.task_id), workers)


def _jax_input_shard(devices) -> InputShard:
    """`jax.process_index()` of `jax.process_count()`, checked on the mesh.

    Keras (`jax.make_array_from_process_local_data`) puts a process's
    local batch on that process's devices; the rows are block `k` of the
    global batch only when process `k`'s devices are block `k` of the
    mesh's devices.
    """
    import jax

    index, count = jax.process_index(), jax.process_count()
    if count == 1:
        return WHOLE_BATCH
    per_process = len(devices) // count
    mine = [i for i, d in enumerate(devices) if d.process_index == index]
    expected = list(range(index * per_process, (index + 1) * per_process))
    if mine != expected:
        raise RuntimeError(
            f"JAX process {index} of {count} holds mesh positions {mine} "
            f"of {len(devices)} devices, expected the block {expected}; "
            "keras-dlpa feeds each process the block of rows at its "
            "position. Give every process the same number of devices."
        )
    return InputShard(index, count)


def _jax_distribution(name: str) -> Distribution:
    import jax

    if name == "multiworker":
        # Multi-host JAX: one process per host. `keras.distribution.
        # initialize` calls `jax.distributed.initialize` with the
        # coordinator address, the process count and this process's id
        # from KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES and
        # _PROCESS_ID (or detected on SLURM, Open MPI, Cloud TPU, ...).
        try:
            keras.distribution.initialize()
        except ValueError as error:
            raise ValueError(
                "strategy='multiworker' on JAX starts one process per host "
                "with `jax.distributed.initialize`, which needs the "
                "coordinator address, the number of processes and this "
                "process's id. Set KERAS_DISTRIBUTION_JOB_ADDRESSES="
                "host0:port, KERAS_DISTRIBUTION_NUM_PROCESSES=N and "
                "KERAS_DISTRIBUTION_PROCESS_ID=k on every process (or run "
                "under a cluster JAX detects, e.g. SLURM). JAX said: "
                f"{error}"
            ) from None
    devices = jax.devices()
    use = name in ("mirrored", "multiworker") or (
        name == "auto" and len(devices) > 1 and devices[0].platform != "cpu"
    )
    if name == "multiworker" or (use and len(devices) > 1):
        shard = _jax_input_shard(devices)
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(
                devices=devices,
                # keras-dlpa builds each process's rows itself.
                auto_shard_dataset=shard.is_whole,
            )
        )
        return Distribution(name, len(devices), input_shard=shard)
    return Distribution(name, 1)


def resolve_distribution(name: str = "auto") -> Distribution:
    """The `Distribution` called `name` on the current Keras backend.

    - TensorFlow: `keras_dlpa.distribute.resolve_strategy(name)`;
      `"multiworker"` is `MultiWorkerMirroredStrategy` from `TF_CONFIG`,
      and this worker's `input_shard` its position (chief first).
    - JAX: `"auto"` uses `keras.distribution.DataParallel` over all local
      accelerators when there is more than one (never over CPU devices);
      `"mirrored"` over all local devices; `"multiworker"` first calls
      `keras.distribution.initialize()` (`jax.distributed.initialize`
      from the `KERAS_DISTRIBUTION_*` variables), then `DataParallel`
      over every device of every process, with
      `input_shard = (jax.process_index(), jax.process_count())`;
      `"default"` one device.

    The batch size stays the global batch (split evenly over replicas).
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"`strategy` must be one of {STRATEGIES}. Received: "
            f"strategy={name!r}"
        )
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from keras_dlpa.distribute import resolve_strategy

        strategy = resolve_strategy(name)
        shard = WHOLE_BATCH
        if name == "multiworker":
            shard = _tf_input_shard(strategy)
        return Distribution(
            name, strategy.num_replicas_in_sync, strategy, input_shard=shard
        )
    if backend == "jax":
        return _jax_distribution(name)
    if name not in ("auto", "default"):
        raise ValueError(
            f"strategy={name!r} is supported on the TensorFlow and JAX "
            f"backends. Received backend: {backend!r}"
        )
    return Distribution(name, 1)


def check_global_batch(batch_size: int, num_replicas: int) -> int:
    """`batch_size / num_replicas`, raising unless it divides evenly."""
    if batch_size % num_replicas:
        raise ValueError(
            f"The global `batch_size` ({batch_size}) must be divisible by "
            f"the number of replicas ({num_replicas}) so every replica gets "
            "the same batch. Choose a multiple of the replica count."
        )
    return batch_size // num_replicas
