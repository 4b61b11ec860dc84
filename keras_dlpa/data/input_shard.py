"""`InputShard`: which rows of every planned global batch a process builds.

Multi-host training runs one process per host (a `tf.distribute` worker or
a JAX process). Each process must feed only its own part of every global
batch, and the global batch must stay the one a single process would
build, so that the gradient, the class statistics of DL2PA and every
augmentation draw are those of a one-process run.

The epoch plans (`keras_dlpa.data.plan`, `keras_dlpa.data.stream_plan`)
are pure functions of `(seed, epoch)`, so every process computes the same
plan (cheap: index and draw arrays only) and builds rows
`index * B / count : (index + 1) * B / count` of each planned batch of
`B` images: contiguous blocks, in process order, which is the order in
which `tf.distribute` (`distribute_datasets_from_function`) and JAX
(`jax.make_array_from_process_local_data`) assemble per-process batches
into the global batch.

Why a row slice of the plan and not grain's sharding
(`grain.sharding.ShardOptions`, `ShardByJaxProcess`) or tf.data
auto-sharding: those split the *records* (or the batches) between
processes, so each process would batch its own records and the global
batch would be a different set of images than the one-process plan
(grain's `ShardOptions` shards the data source; tf.data's
`AutoShardPolicy.DATA` keeps the global batches but every worker builds
every batch and drops the others' rows, which for streamed JPEGs means
decoding all of them). Slicing the planned batch keeps the global batch
exact and decodes each image once. Mixup and cutmix mix an image with a
partner anywhere in the global batch: a process also builds the partner
rows its own rows need (at most twice its share), so mixed batches stay
exact too.

Example:

>>> shard = InputShard(index=1, count=2)
>>> shard.rows(8)
slice(4, 8, None)
"""

from __future__ import annotations

import dataclasses

import numpy as np


def check_batch_size(batch_size) -> None:
    """A `ValueError` unless `batch_size` is an integer >= 1."""
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(
            "`batch_size` must be a positive integer. Received: "
            f"batch_size={batch_size!r}"
        )


@dataclasses.dataclass(frozen=True)
class InputShard:
    """Process `index` of `count` builds its block of each global batch.

    Args:
        index: this process's position, `0 <= index < count` (the
            `tf.distribute` input pipeline id, or `jax.process_index()`).
        count: number of processes that feed the global batch.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self):
        for name in ("index", "count"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value:
                raise ValueError(
                    f"`{name}` must be an integer. Received: {name}={value!r}"
                )
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(
                "Expected 0 <= `index` < `count` and `count` >= 1. "
                f"Received: index={self.index!r}, count={self.count!r}"
            )
        object.__setattr__(self, "index", int(self.index))
        object.__setattr__(self, "count", int(self.count))

    @property
    def is_whole(self) -> bool:
        """Whether this process builds the whole batch (one process)."""
        return self.count == 1

    def local_batch_size(self, batch_size: int) -> int:
        """`batch_size / count`, raising unless it divides evenly."""
        check_batch_size(batch_size)
        if batch_size % self.count:
            raise ValueError(
                f"The global batch size ({batch_size}) must be divisible by "
                f"the number of input processes ({self.count}) so every "
                "process builds the same number of rows. Choose a multiple "
                f"of {self.count}."
            )
        return int(batch_size) // self.count

    def rows(self, batch_size: int) -> slice:
        """The rows `[start, stop)` of a global batch this process builds."""
        local = self.local_batch_size(batch_size)
        return slice(self.index * local, (self.index + 1) * local)

    def positions(self, batch_size: int) -> np.ndarray:
        """int64 `(B / count,)` positions of `rows` in the global batch."""
        rows = self.rows(batch_size)
        return np.arange(rows.start, rows.stop, dtype=np.int64)


WHOLE_BATCH = InputShard()
