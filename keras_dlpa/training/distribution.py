"""`--strategy` on every backend: tf.distribute on TensorFlow, Keras'
`DataParallel` distribution on JAX, with the same global-batch rule."""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import keras

STRATEGIES = ("auto", "default", "mirrored", "multiworker")

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Distribution:
    """How a run is distributed.

    Attributes:
        name: the `--strategy` name.
        num_replicas: data-parallel replicas (devices) in sync.
        tf_strategy: the `tf.distribute.Strategy` on TensorFlow, else None.
    """

    name: str
    num_replicas: int
    tf_strategy: object = None

    def scope(self):
        """Context to build and compile the model in."""
        if self.tf_strategy is not None:
            return self.tf_strategy.scope()
        return contextlib.nullcontext()


def _jax_distribution(name: str) -> Distribution:
    import jax

    if name == "multiworker":
        # Multi-host JAX: one process per host, configured by the
        # environment (coordinator address, process count and id).
        jax.distributed.initialize()
    devices = jax.devices()
    use = name in ("mirrored", "multiworker") or (
        name == "auto" and len(devices) > 1 and devices[0].platform != "cpu"
    )
    if name == "multiworker" or (use and len(devices) > 1):
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices)
        )
        return Distribution(name, len(devices))
    return Distribution(name, 1)


def resolve_distribution(name: str = "auto") -> Distribution:
    """The `Distribution` called `name` on the current Keras backend.

    - TensorFlow: `keras_dlpa.distribute.resolve_strategy(name)`.
    - JAX: `"auto"` uses `keras.distribution.DataParallel` over all local
      accelerators when there is more than one (never over CPU devices);
      `"mirrored"` over all local devices; `"multiworker"` first calls
      `jax.distributed.initialize()` (multi-host), then `DataParallel`
      over every device of every host; `"default"` one device.

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
        return Distribution(name, strategy.num_replicas_in_sync, strategy)
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
