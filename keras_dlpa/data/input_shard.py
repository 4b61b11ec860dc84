"""`InputShard`: which rows of every planned global batch a process builds
(why a row slice of the plan: docs/data.md).

Example:

>>> shard = InputShard(index=1, count=2)
>>> shard.rows(8)
slice(4, 8, None)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_dlpa.checks import check_int


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
            object.__setattr__(self, name, int(value))
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(
                "Expected 0 <= `index` < `count` and `count` >= 1. "
                f"Received: index={self.index!r}, count={self.count!r}"
            )

    @property
    def is_whole(self) -> bool:
        """Whether this process builds the whole batch (one process)."""
        return self.count == 1

    def local_batch_size(self, batch_size: int) -> int:
        """`batch_size / count`, raising unless it divides evenly."""
        if check_int("batch_size", batch_size) % self.count:
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
