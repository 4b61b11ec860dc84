"""`--strategy` on every backend: tf.distribute on TensorFlow, Keras'
`DataParallel` distribution on JAX, with the same global-batch rule
(`docs/distributed.md`)."""

from __future__ import annotations

import contextlib
import dataclasses

import keras

from keras_dlpa.checks import check_choice
from keras_dlpa.data.input_shard import WHOLE_BATCH
from keras_dlpa.data.input_shard import InputShard

STRATEGIES = ("auto", "default", "mirrored", "multiworker")


@dataclasses.dataclass
class Distribution:
    """How a run is distributed.

    Attributes:
        name: the `--strategy` name.
        num_replicas: data-parallel replicas (devices) over all processes.
        tf_strategy: the `tf.distribute.Strategy` on TensorFlow, else None.
        input_shard: the rows of every global batch this process builds
            (`keras_dlpa.data.InputShard`; the whole batch on one host).
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
            make_dataset: `make_dataset(shard) -> dataset` (`tf.data` or
                grain) of the rows `shard.rows(B)` of each global batch.
            batch_size: the global batch size `B`.
            element_spec: `(images, labels)` `tf.TensorSpec`s of the local
                batches; needed only for grain under
                `MultiWorkerMirroredStrategy`.

        Returns:
            `make_dataset(shard)`, or on TensorFlow with several workers a
            `tf.distribute.DistributedDataset` of it that tf.distribute
            neither re-shards nor re-batches (`docs/distributed.md`).
        """
        shard = self.input_shard
        if shard.is_whole or self.tf_strategy is None:
            return make_dataset(shard)
        from keras_dlpa.training import _tf_strategy

        return _tf_strategy.distribute_input(
            self.tf_strategy, shard, make_dataset, batch_size, element_spec
        )


def _jax_input_shard(devices) -> InputShard:
    """`jax.process_index()` of `jax.process_count()`, checked to own block
    `k` of the mesh (where Keras puts process `k`'s local batch)."""
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

    `"auto"`: all local accelerators when there is more than one;
    `"mirrored"`: all local devices (TensorFlow: all GPUs, else all logical
    CPUs); `"multiworker"`: every device of every process
    (`MultiWorkerMirroredStrategy` from `TF_CONFIG`, created before any
    other TensorFlow op; on JAX `keras.distribution.initialize()` from the
    `KERAS_DISTRIBUTION_*` variables); `"default"`: one device. The batch
    size stays the global batch. Details: `docs/distributed.md`.
    """
    check_choice("strategy", name, STRATEGIES)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from keras_dlpa.training import _tf_strategy

        strategy = _tf_strategy.resolve_strategy(name)
        shard = WHOLE_BATCH
        if name == "multiworker":
            shard = _tf_strategy.tf_input_shard(strategy)
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
    """`batch_size / num_replicas` for the global `batch_size`, raising
    unless it divides evenly (uneven replica batches would change the
    weighting of the averaged gradients)."""
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(
            "The global `batch_size` must be a positive integer. "
            f"Received: {batch_size!r}"
        )
    if batch_size % num_replicas:
        lower = batch_size - batch_size % num_replicas
        raise ValueError(
            f"The global `batch_size` ({batch_size}) must be divisible by "
            f"the number of replicas ({num_replicas}) so every replica gets "
            f"the same batch. Use a multiple of {num_replicas}, e.g. "
            f"{max(lower, num_replicas)} or {lower + num_replicas}."
        )
    return batch_size // num_replicas
