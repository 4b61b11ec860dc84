"""Scale-out training helpers for the TensorFlow backend (`tf.distribute`).

DL2PA needs nothing special under a strategy beyond building and compiling
the model inside `strategy.scope()`: `PrototypeLayer` keeps its interval
statistics in sync-on-read SUM variables (each replica adds its own samples;
a read in the callback returns the exact total over replicas and workers),
and `ReassignCallback` writes the representatives and the assignment from the
cross-replica context, which updates every replica's copy.

Batch size semantics follow Keras: the batch size given to `fit` (or the
batch of a `tf.data.Dataset`) is the GLOBAL batch; each of the
`strategy.num_replicas_in_sync` replicas gets `global / replicas` samples.

Example:

```python
strategy = keras_dlpa.distribute.resolve_strategy("mirrored")
batch = 512  # global
keras_dlpa.distribute.per_replica_batch_size(batch, strategy)  # checks
lr = keras_dlpa.distribute.scale_learning_rate(0.1, batch, base_batch_size=128)
with strategy.scope():
    model = build_model()
    model.compile(keras.optimizers.SGD(lr), loss=keras_dlpa.IPMLoss())
model.fit(train_ds, callbacks=[keras_dlpa.ReassignCallback()])
```
"""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

STRATEGY_NAMES = ("auto", "default", "mirrored", "multiworker")
LR_SCALING_RULES = ("linear", "sqrt", "none")
# Job names `tf.distribute.MultiWorkerMirroredStrategy` understands.
_MULTIWORKER_JOBS = ("chief", "worker", "evaluator")
# The Keras release series `_patch_multiworker_reduce` was written and tested
# for; it replaces a method on the strategy for internals of Keras' `fit`.
MULTIWORKER_PATCH_KERAS = "3.15"

logger = logging.getLogger(__name__)


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


def _mirrored_devices():
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [device.name for device in gpus]
    # No GPU: mirror over the logical CPU devices (one unless configured
    # with `tf.config.set_logical_device_configuration`).
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def resolve_strategy(
    name: str = "auto", devices=None
) -> tf.distribute.Strategy:
    """Returns the `tf.distribute.Strategy` named `name`.

    Build and compile the model inside `strategy.scope()`; `fit` then runs
    under the strategy.

    Args:
        name: one of
            - `"auto"`: `MirroredStrategy` over all GPUs when more than one
              GPU is visible, else the default (no-op) strategy.
            - `"default"`: the default strategy (one device).
            - `"mirrored"`: `MirroredStrategy`, synchronous data parallel
              over `devices`, by default all GPUs, or all logical CPU
              devices when there is no GPU.
            - `"multiworker"`: `MultiWorkerMirroredStrategy` configured from
              the `TF_CONFIG` environment variable (checked first with
              `validate_tf_config`). Create it at program start, before
              any other TensorFlow op. Keras 3 `fit` needs a fix on this
              strategy with several workers, applied here (see
              `_patch_multiworker_reduce`).
        devices: optional device names for `"mirrored"`.

    Returns:
        The strategy; `strategy.num_replicas_in_sync` is the replica count.

    Raises:
        ValueError: for an unknown `name` or an invalid `TF_CONFIG`.
        RuntimeError: for `"multiworker"` created after TensorFlow started.
    """
    if not isinstance(name, str) or name.lower() not in STRATEGY_NAMES:
        raise ValueError(
            f"Unknown distribution strategy {name!r}. Expected one of "
            f"{', '.join(STRATEGY_NAMES)}."
        )
    name = name.lower()
    if devices is not None and name != "mirrored":
        raise ValueError(
            "Argument `devices` is only used with strategy 'mirrored'. "
            f"Received: name={name!r}, devices={devices!r}"
        )
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            strategy = tf.distribute.MirroredStrategy()
        else:
            strategy = tf.distribute.get_strategy()
    elif name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        devices = list(devices) if devices is not None else _mirrored_devices()
        strategy = tf.distribute.MirroredStrategy(devices=devices)
    else:
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
                "when it starts). Call resolve_strategy('multiworker') first "
                "in the program, before loading data or building models. "
                f"TensorFlow said: {error}"
            ) from None
        _patch_multiworker_reduce(strategy)
    logger.info(
        "Distribution strategy %s with %d replica(s).",
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
    )
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
            "version keras-dlpa pins), or check that the workaround in "
            "keras_dlpa/distribute.py (`_patch_multiworker_reduce`) is still "
            "needed and correct for this Keras and update "
            "`MULTIWORKER_PATCH_KERAS`."
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


def _num_replicas(strategy) -> int:
    if strategy is None:
        return tf.distribute.get_strategy().num_replicas_in_sync
    if isinstance(strategy, int) and not isinstance(strategy, bool):
        if strategy < 1:
            raise ValueError(
                f"The number of replicas must be >= 1. Received: {strategy}"
            )
        return strategy
    return int(strategy.num_replicas_in_sync)


def per_replica_batch_size(global_batch_size: int, strategy=None) -> int:
    """Returns `global_batch_size / replicas`, checking it divides evenly.

    Keras treats the batch size of `fit` as global: each replica computes
    the loss on `global / replicas` samples and the gradients are averaged.
    With an uneven split the replicas' batches differ in size and the
    averaged gradient is no longer the mean over the global batch, so an
    uneven split is rejected.

    Args:
        global_batch_size: the batch size passed to `fit` / the dataset.
        strategy: a `tf.distribute.Strategy`, an int replica count, or
            `None` for the current strategy.

    Returns:
        The per-replica batch size.
    """
    if (
        isinstance(global_batch_size, bool)
        or not isinstance(global_batch_size, int)
        or global_batch_size < 1
    ):
        raise ValueError(
            "Argument `global_batch_size` must be a positive integer. "
            f"Received: {global_batch_size!r}"
        )
    replicas = _num_replicas(strategy)
    if global_batch_size % replicas:
        lower = global_batch_size - global_batch_size % replicas
        raise ValueError(
            f"The global batch size {global_batch_size} is not divisible by "
            f"the {replicas} replicas in sync. Use a multiple of {replicas}, "
            f"e.g. {max(lower, replicas)} or {lower + replicas}."
        )
    return global_batch_size // replicas


def scale_learning_rate(
    base_lr: float,
    global_batch_size: int,
    base_batch_size: int = 128,
    rule: str = "linear",
) -> float:
    """Scales a learning rate tuned at `base_batch_size` to a global batch.

    `"linear"`: `base_lr * global / base` (Goyal et al., 2017), `"sqrt"`:
    `base_lr * sqrt(global / base)`, `"none"`: `base_lr`. Pair a large
    linear scale-up with a few epochs of warmup.
    """
    if rule not in LR_SCALING_RULES:
        raise ValueError(
            f"Argument `rule` must be one of {', '.join(LR_SCALING_RULES)}. "
            f"Received: {rule!r}"
        )
    for arg, value in (
        ("global_batch_size", global_batch_size),
        ("base_batch_size", base_batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"Argument `{arg}` must be a positive integer. "
                f"Received: {value!r}"
            )
    if not base_lr > 0:
        raise ValueError(
            f"Argument `base_lr` must be positive. Received: {base_lr!r}"
        )
    ratio = global_batch_size / base_batch_size
    if rule == "linear":
        return float(base_lr * ratio)
    if rule == "sqrt":
        return float(base_lr * ratio**0.5)
    return float(base_lr)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Sets `AutoShardPolicy.DATA` on `dataset` for multi-worker training.

    Every worker then reads the same (identically seeded) dataset and keeps
    its own slice of each global batch, so the global batches are those of a
    single-process run. Use it for in-memory data and `from_generator`
    datasets, which the default `AUTO` policy cannot shard by file. Every
    worker still builds every whole batch; the recipes instead build only
    each worker's rows (`keras_dlpa.training.distribution.Distribution.
    training_input`, `keras_dlpa.data.InputShard`).
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.with_options(options)
