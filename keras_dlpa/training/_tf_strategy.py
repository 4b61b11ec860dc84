"""The TensorFlow half of `keras_dlpa.training.distribution`.

Imported only when a run on the TensorFlow backend asks for a strategy, so
the JAX path works without TensorFlow. DL2PA needs nothing special under a
strategy beyond building and compiling the model inside `strategy.scope()`:
`PrototypeLayer` keeps its statistics in sync-on-read SUM variables and
`ReassignCallback` writes from the cross-replica context.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from keras_dlpa.data.input_shard import WHOLE_BATCH
from keras_dlpa.data.input_shard import InputShard

# Job names `tf.distribute.MultiWorkerMirroredStrategy` understands.
_MULTIWORKER_JOBS = ("chief", "worker", "evaluator")
# The Keras release series `_patch_multiworker_reduce` was written and tested
# for; it replaces a method on the strategy for internals of Keras' `fit`.
MULTIWORKER_PATCH_KERAS = "3.15"


def _tf_config_error(message: str, received) -> ValueError:
    return ValueError(
        f"Invalid TF_CONFIG: {message}. Received: TF_CONFIG={received!r}. "
        'Expected JSON like {"cluster": {"worker": ["host0:port", '
        '"host1:port"]}, "task": {"type": "worker", "index": 0}}.'
    )


def _check_address(job: str, index: int, address, raw) -> None:
    if not isinstance(address, str) or ":" not in address:
        raise _tf_config_error(
            f"cluster['{job}'][{index}] must be a 'host:port' string, got "
            f"{address!r}",
            raw,
        )
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _tf_config_error(
            f"cluster['{job}'][{index}] = {address!r} is not 'host:port' "
            "with a port in 1..65535",
            raw,
        )


def validate_tf_config(tf_config: str | dict | None = None) -> dict:
    """Parses and checks a `TF_CONFIG` for multi-worker training.

    Args:
        tf_config: the JSON string or dict; read from the `TF_CONFIG`
            environment variable when `None`.

    Returns:
        The parsed dict `{"cluster": {job: [addresses]}, "task": {"type":
        job, "index": i}}`.

    Raises:
        ValueError: when `TF_CONFIG` is unset, not JSON, lacks `cluster` or
            `task`, has an empty or malformed job, a task type that is not a
            job of the cluster, an index out of range, duplicate addresses,
            or a job `MultiWorkerMirroredStrategy` does not support (`ps`).
    """
    raw = os.environ.get("TF_CONFIG") if tf_config is None else tf_config
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ValueError(
            "Strategy 'multiworker' needs the TF_CONFIG environment variable "
            "(cluster addresses and this worker's task), but it is not set. "
            'Example: TF_CONFIG=\'{"cluster": {"worker": ["10.0.0.1:'
            '12345", "10.0.0.2:12345"]}, "task": {"type": "worker", '
            '"index": 0}}\''
        )
    if isinstance(raw, str):
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as error:
            raise _tf_config_error(f"not valid JSON ({error})", raw) from None
    else:
        config = raw
    if not isinstance(config, dict):
        raise _tf_config_error("must be a JSON object", raw)
    for key in ("cluster", "task"):
        if key not in config:
            raise _tf_config_error(f"missing the '{key}' key", raw)
    cluster, task = config["cluster"], config["task"]
    if not isinstance(cluster, dict) or not cluster:
        raise _tf_config_error(
            "'cluster' must be a non-empty object of job -> addresses", raw
        )
    seen = {}
    for job, addresses in cluster.items():
        if job not in _MULTIWORKER_JOBS:
            raise _tf_config_error(
                f"job '{job}' is not supported by MultiWorkerMirroredStrategy"
                f" (supported: {', '.join(_MULTIWORKER_JOBS)}; 'ps' needs "
                "tf.distribute.ParameterServerStrategy)",
                raw,
            )
        if not isinstance(addresses, list) or not addresses:
            raise _tf_config_error(
                f"cluster['{job}'] must be a non-empty list of 'host:port'",
                raw,
            )
        for index, address in enumerate(addresses):
            _check_address(job, index, address, raw)
            if address in seen:
                raise _tf_config_error(
                    f"address {address!r} appears twice ({seen[address]} "
                    f"and {job}[{index}])",
                    raw,
                )
            seen[address] = f"{job}[{index}]"
    if len(cluster.get("chief", [])) > 1:
        raise _tf_config_error("at most one 'chief' is allowed", raw)
    if not isinstance(task, dict):
        raise _tf_config_error("'task' must be an object", raw)
    for key in ("type", "index"):
        if key not in task:
            raise _tf_config_error(f"'task' is missing '{key}'", raw)
    task_type, index = task["type"], task["index"]
    if task_type not in cluster:
        raise _tf_config_error(
            f"task type {task_type!r} is not a job of the cluster "
            f"({sorted(cluster)})",
            raw,
        )
    if isinstance(index, bool) or not isinstance(index, int):
        raise _tf_config_error(
            f"task index must be an integer, got {index!r}", raw
        )
    if not 0 <= index < len(cluster[task_type]):
        raise _tf_config_error(
            f"task index {index} is out of range for job '{task_type}' with "
            f"{len(cluster[task_type])} address(es)",
            raw,
        )
    return config


def resolve_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute.Strategy` for a `resolve_distribution` name.

    `"auto"`: `MirroredStrategy` over all GPUs when more than one is
    visible, else the default strategy; `"default"`: one device;
    `"mirrored"`: `MirroredStrategy` over all GPUs, or all logical CPU
    devices when there is none; `"multiworker"`:
    `MultiWorkerMirroredStrategy` from `TF_CONFIG` (checked first with
    `validate_tf_config`), patched for Keras 3 `fit`
    (`_patch_multiworker_reduce`). Create it before any other TensorFlow
    op.
    """
    if name in ("auto", "mirrored"):
        # Listing devices starts TensorFlow, so not for "multiworker".
        gpus = tf.config.list_logical_devices("GPU")
        if name == "mirrored" or len(gpus) > 1:
            devices = gpus or tf.config.list_logical_devices("CPU")
            return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name != "multiworker":
        return tf.distribute.get_strategy()
    validate_tf_config()
    check_multiworker_patch_version()
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise RuntimeError(
            "Strategy 'multiworker' must be created before any other "
            "TensorFlow op runs (TensorFlow configures collective ops "
            "when it starts). Call resolve_distribution('multiworker') "
            "first in the program, before loading data or building models. "
            f"TensorFlow said: {error}"
        ) from None
    _patch_multiworker_reduce(strategy)
    return strategy


def check_multiworker_patch_version(version: str | None = None) -> None:
    """Raises unless Keras is the version `_patch_multiworker_reduce` fits.

    The patch replaces `strategy.reduce` to work around how Keras 3.15's
    `fit` calls it; on another Keras it may hide a changed call or be no
    longer needed, so it is refused rather than applied blindly.

    Args:
        version: the Keras version; `keras.__version__` when `None`.

    Raises:
        RuntimeError: for a Keras version outside `MULTIWORKER_PATCH_KERAS`.
    """
    if version is None:
        import keras

        version = keras.__version__
    if version.split(".")[:2] != MULTIWORKER_PATCH_KERAS.split("."):
        raise RuntimeError(
            "Strategy 'multiworker' needs keras_dlpa's workaround for "
            "Keras `fit` under MultiWorkerMirroredStrategy "
            "(keras-team/keras#20585), which was written and tested for "
            f"Keras {MULTIWORKER_PATCH_KERAS}.x, but Keras {version} is "
            f"installed. Install keras=={MULTIWORKER_PATCH_KERAS}.* (the "
            "version keras-dlpa pins), or check that the workaround "
            "(`_patch_multiworker_reduce` in "
            "keras_dlpa/training/_tf_strategy.py) is still needed and "
            "correct for this Keras and update `MULTIWORKER_PATCH_KERAS`."
        )


def _patch_multiworker_reduce(strategy) -> None:
    """Works around two Keras 3 `fit` failures with several workers.

    Keras 3 (tested: 3.15 with TF 2.21) calls `strategy.reduce` in ways
    `MultiWorkerMirroredStrategy` rejects once there is more than one
    worker (keras-team/keras#20585, tensorflow/tensorflow#72388):

    - on the first `(x, y)` batch before building the model: a nested
      structure, which only `MirroredStrategy` maps over ("Attempt to
      convert a value (PerReplica...) ... to a Tensor");
    - on the scalar step logs with `axis=0` ("Invalid reduction dimension 0
      for input with 0 dimensions").

    This instance-level patch maps the reduction over nested structures and
    reduces scalars with `axis=None` (the mean over replicas, which is what
    a single-worker strategy returns for them). It refuses other Keras
    versions (`check_multiworker_patch_version`).
    """
    check_multiworker_patch_version()
    reduce = strategy.reduce

    def _is_scalar(value):
        results = strategy.experimental_local_results(value)
        return all(
            getattr(v, "shape", None) is not None and v.shape.rank == 0
            for v in results
        )

    def nested_reduce(reduce_op, value, axis=None):
        def one(v):
            return reduce(reduce_op, v, None if _is_scalar(v) else axis)

        return tf.nest.map_structure(one, value)

    strategy.reduce = nested_reduce


def distribute_input(strategy, shard, make_dataset, batch_size, spec):
    """Each worker's rows as a `tf.distribute.DistributedDataset`.

    See `Distribution.training_input`.
    """

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
            dataset = grain_to_tf(dataset, spec)
        per_replica = context.get_per_replica_batch_size(batch_size)
        if per_replica != shard.local_batch_size(batch_size):
            dataset = dataset.rebatch(per_replica, drop_remainder=True)
        return dataset

    return strategy.distribute_datasets_from_function(dataset_fn)


def grain_to_tf(dataset, element_spec):
    """A grain dataset as a `tf.data.Dataset` with `element_spec`."""
    if element_spec is None:
        raise ValueError(
            "A grain training dataset under MultiWorkerMirroredStrategy "
            "needs `element_spec` (the TensorSpecs of one local batch)."
        )

    return tf.data.Dataset.from_generator(
        lambda: iter(dataset), output_signature=tuple(element_spec)
    )


def tf_input_shard(strategy) -> InputShard:
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
