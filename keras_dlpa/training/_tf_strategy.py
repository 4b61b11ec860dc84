"""The TensorFlow half of `keras_dlpa.training.distribution`, imported only
when a TensorFlow run asks for a strategy (see `docs/distributed.md`)."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from keras_dlpa.data.input_shard import WHOLE_BATCH
from keras_dlpa.data.input_shard import InputShard

# Job names `tf.distribute.MultiWorkerMirroredStrategy` understands.
_MULTIWORKER_JOBS = ("chief", "worker", "evaluator")
# The Keras release series `_patch_multiworker_reduce` was written for.
MULTIWORKER_PATCH_KERAS = "3.15"


def _tf_config_error(message: str, received) -> ValueError:
    return ValueError(
        f"Invalid TF_CONFIG: {message}. Received: TF_CONFIG={received!r}. "
        'Expected JSON like {"cluster": {"worker": ["host0:port", '
        '"host1:port"]}, "task": {"type": "worker", "index": 0}}.'
    )


def validate_tf_config(tf_config: str | dict | None = None) -> dict:
    """Parses and checks a `TF_CONFIG` for multi-worker training.

    Args:
        tf_config: the JSON string or dict; the `TF_CONFIG` environment
            variable when `None`.

    Returns:
        The parsed dict `{"cluster": {job: [addresses]}, "task": {"type":
        job, "index": i}}`.

    Raises:
        ValueError: when `TF_CONFIG` is unset, not JSON, or not a valid
            `MultiWorkerMirroredStrategy` cluster with this task in it.
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
    try:
        config = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as error:
        raise _tf_config_error(f"not valid JSON ({error})", raw) from None

    def require(ok, message):
        if not ok:
            raise _tf_config_error(message, raw)

    require(isinstance(config, dict), "must be a JSON object")
    for key in ("cluster", "task"):
        require(key in config, f"missing the '{key}' key")
    cluster, task = config["cluster"], config["task"]
    require(
        isinstance(cluster, dict) and cluster,
        "'cluster' must be a non-empty object of job -> addresses",
    )
    seen = {}
    for job, addresses in cluster.items():
        require(
            job in _MULTIWORKER_JOBS,
            f"job '{job}' is not supported by MultiWorkerMirroredStrategy "
            f"(supported: {', '.join(_MULTIWORKER_JOBS)}; 'ps' needs "
            "tf.distribute.ParameterServerStrategy)",
        )
        require(
            isinstance(addresses, list) and addresses,
            f"cluster['{job}'] must be a non-empty list of 'host:port'",
        )
        for index, address in enumerate(addresses):
            where = f"cluster['{job}'][{index}]"
            require(
                isinstance(address, str) and ":" in address,
                f"{where} must be a 'host:port' string, got {address!r}",
            )
            host, _, port = address.rpartition(":")
            require(
                host and port.isdigit() and 0 < int(port) < 65536,
                f"{where} = {address!r} is not 'host:port' with a port in "
                "1..65535",
            )
            require(
                address not in seen,
                f"address {address!r} appears twice ({seen.get(address)} "
                f"and {job}[{index}])",
            )
            seen[address] = f"{job}[{index}]"
    require(
        len(cluster.get("chief", [])) <= 1, "at most one 'chief' is allowed"
    )
    require(isinstance(task, dict), "'task' must be an object")
    for key in ("type", "index"):
        require(key in task, f"'task' is missing '{key}'")
    task_type, index = task["type"], task["index"]
    require(
        task_type in cluster,
        f"task type {task_type!r} is not a job of the cluster "
        f"({sorted(cluster)})",
    )
    require(
        isinstance(index, int) and not isinstance(index, bool),
        f"task index must be an integer, got {index!r}",
    )
    count = len(cluster[task_type])
    require(
        0 <= index < count,
        f"task index {index} is out of range for job '{task_type}' with "
        f"{count} address(es)",
    )
    return config


def resolve_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute.Strategy` for a `resolve_distribution` name."""
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
    """Raises `RuntimeError` unless Keras `version` (default: installed) is
    the series `_patch_multiworker_reduce` was written for."""
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
    """Makes `strategy.reduce` map over nested structures and reduce
    scalars with `axis=None`, as Keras 3.15 `fit` needs with several
    workers (keras-team/keras#20585, tensorflow/tensorflow#72388)."""
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
    """Each worker's rows as a `tf.distribute.DistributedDataset`."""

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
        if not isinstance(dataset, tf.data.Dataset):  # grain
            if spec is None:
                raise ValueError(
                    "A grain training dataset under MultiWorkerMirrored"
                    "Strategy needs `element_spec` (the TensorSpecs of one "
                    "local batch)."
                )
            grain = dataset
            dataset = tf.data.Dataset.from_generator(
                lambda: iter(grain), output_signature=tuple(spec)
            )
        per_replica = context.get_per_replica_batch_size(batch_size)
        if per_replica != shard.local_batch_size(batch_size):
            dataset = dataset.rebatch(per_replica, drop_remainder=True)
        return dataset

    return strategy.distribute_datasets_from_function(dataset_fn)


def tf_input_shard(strategy) -> InputShard:
    """Worker `k` of `W` of a `MultiWorkerMirroredStrategy`: the chief
    first, then the workers (tf.distribute's input pipeline order)."""
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
