"""`DeadlineCallback`: stop training after the last epoch that fits."""

from __future__ import annotations

import time

import keras

from keras_dlpa.checks import check_number


class DeadlineCallback(keras.callbacks.Callback):
    """Stops `fit` after the last epoch expected to end before a deadline.

    At each epoch end it sets `model.stop_training` when the next epoch,
    estimated as `margin` times the `longest` epoch so far, would end after
    `deadline`. Checkpointing callbacks still run at that epoch's end, so
    the run can be resumed; `completed` tells whether every epoch ran.

    Args:
        deadline: Unix time (`time.time()`) by which training must stop.
        margin: safety factor on the epoch duration (> 0).
        verbose: print a line when it stops training.

    Example:

    ```python
    deadline = keras_dlpa.DeadlineCallback(time.time() + 3600)
    model.fit(ds, epochs=200, callbacks=[deadline, checkpoint])
    deadline.completed  # False if it stopped early
    ```
    """

    def __init__(self, deadline: float, margin: float = 1.5, verbose=1):
        super().__init__()
        self.deadline = float(deadline)
        self.margin = check_number("margin", margin)
        self.verbose = verbose
        self.on_train_begin()

    @property
    def longest(self) -> float:
        """The longest epoch of this `fit` in seconds (0 before any),
        leaving out the first (it includes compilation) once there are more."""
        return max(self.durations[1:] or self.durations or [0.0])

    def on_train_begin(self, logs=None):
        self.completed = True
        self.durations = []
        self.stopped_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        self.durations.append(now - self._start)
        epochs = (self.params or {}).get("epochs")
        if epochs is not None and epoch + 1 >= epochs:
            return
        if now + self.margin * self.longest > self.deadline:
            self.completed = False
            self.stopped_epoch = int(epoch)
            self.model.stop_training = True
            if self.verbose:
                print(
                    f"DeadlineCallback: stopping after epoch {epoch + 1}: "
                    f"the next epoch (~{self.longest:.0f} s) would end after "
                    "the deadline.",
                    flush=True,
                )
