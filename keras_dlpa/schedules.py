"""Learning-rate schedules of the DL2PA recipes (warm-up + decay).

Pure functions of the optimizer step, so a resumed run that restores the
iteration counter continues with the same rates.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

import keras
from keras import ops

from keras_dlpa.api_export import register
from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number


def _linear_warmup(lr, step, base_learning_rate, warmup_steps: float):
    """`lr`, except `base * (step + 1) / warmup_steps` before `warmup_steps`."""
    if warmup_steps <= 0:
        return lr
    ramp = base_learning_rate * (step + 1.0) / warmup_steps
    return ops.where(step < warmup_steps, ramp, lr)


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule that stores every constructor argument as an attribute."""

    def _check_warmup(self, base, steps_per_epoch, warmup):
        self.base_learning_rate = check_number("base_learning_rate", base)
        self.steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch)
        self.warmup_epochs = check_int("warmup_epochs", warmup, minimum=0)

    def get_config(self):
        names = list(inspect.signature(type(self)).parameters)
        return {name: getattr(self, name) for name in names}


@register
class WarmupMultiStep(_Schedule):
    """Linear warm-up, then step decay by `gamma` at given epochs.

    With `s` the 0-based optimizer step and `S = steps_per_epoch`: during
    warm-up (`s < warmup_epochs * S`) `lr = base * (s + 1) /
    (warmup_epochs * S)`; afterwards `lr = base * gamma ** k`, with `k` the
    number of `milestones <= s // S`.

    Args:
        base_learning_rate: peak learning rate, e.g. 0.1.
        steps_per_epoch: optimizer steps per epoch, >= 1.
        warmup_epochs: epochs of linear warm-up (0 disables it).
        milestones: epochs (0-based) at whose start the rate is multiplied
            by `gamma`, e.g. `(160, 180)`.
        gamma: decay factor per milestone.

    Example:

    ```python
    schedule = WarmupMultiStep(0.1, 97, warmup_epochs=5, milestones=(160, 180))
    float(schedule(0))  # 0.1 / 485
    ```
    """

    def __init__(
        self,
        base_learning_rate: float,
        steps_per_epoch: int,
        warmup_epochs: int = 0,
        milestones: Sequence[int] = (),
        gamma: float = 0.1,
        name: str = "warmup_multi_step",
    ):
        self._check_warmup(base_learning_rate, steps_per_epoch, warmup_epochs)
        milestones = [int(m) for m in milestones]
        if milestones != sorted(milestones) or any(m < 0 for m in milestones):
            raise ValueError(
                "`milestones` must be non-negative epochs in increasing "
                f"order. Received: milestones={milestones}"
            )
        self.milestones = milestones
        self.gamma = check_number("gamma", gamma)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        epoch = ops.floor(step / float(self.steps_per_epoch))
        decays = ops.zeros((), "float32")
        for milestone in self.milestones:
            decays = decays + ops.cast(epoch >= milestone, "float32")
        lr = self.base_learning_rate * ops.power(self.gamma, decays)
        warmup_steps = float(self.warmup_epochs * self.steps_per_epoch)
        return _linear_warmup(lr, step, self.base_learning_rate, warmup_steps)


@register
class WarmupCosine(_Schedule):
    """Linear warm-up, then cosine decay to `final_learning_rate`.

    Warm-up as in `WarmupMultiStep`; afterwards, with `t = (s - W) / (T - W)`
    clipped to `[0, 1]` (`W` warm-up steps, `T = epochs * steps_per_epoch`),
    `lr = final + (base - final) * (1 + cos(pi t)) / 2`.

    Args:
        base_learning_rate: peak learning rate.
        steps_per_epoch: optimizer steps per epoch.
        epochs: total epochs of the run.
        warmup_epochs: epochs of linear warm-up.
        final_learning_rate: rate at the end of the run.
    """

    def __init__(
        self,
        base_learning_rate: float,
        steps_per_epoch: int,
        epochs: int,
        warmup_epochs: int = 0,
        final_learning_rate: float = 0.0,
        name: str = "warmup_cosine",
    ):
        self._check_warmup(base_learning_rate, steps_per_epoch, warmup_epochs)
        self.epochs = check_int("epochs", epochs)
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                "`warmup_epochs` must be at most `epochs` "
                f"({epochs}). Received: warmup_epochs={warmup_epochs}"
            )
        self.final_learning_rate = float(final_learning_rate)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup_steps = float(self.warmup_epochs * self.steps_per_epoch)
        total = float(self.epochs * self.steps_per_epoch)
        span = max(total - warmup_steps, 1.0)
        t = ops.clip((step - warmup_steps) / span, 0.0, 1.0)
        base, final = self.base_learning_rate, self.final_learning_rate
        lr = final + (base - final) * 0.5 * (1.0 + ops.cos(math.pi * t))
        return _linear_warmup(lr, step, base, warmup_steps)


@register
class FrozenThenScaled(_Schedule):
    """`scale * schedule(step)`, and 0 for the first `frozen_steps` steps.

    The trunk's rate in fine-tuning: a frozen-trunk warm-up, then
    discriminative learning rates, with no re-compile in between.

    Args:
        schedule: the head's `LearningRateSchedule`.
        scale: factor of the trunk's rate (> 0).
        frozen_steps: optimizer steps with rate 0.
    """

    def __init__(self, schedule, scale: float = 1.0, frozen_steps: int = 0):
        if isinstance(schedule, dict):
            schedule = keras.optimizers.schedules.deserialize(schedule)
        self.schedule = schedule
        self.scale = check_number("scale", scale)
        self.frozen_steps = check_int("frozen_steps", frozen_steps, minimum=0)

    def __call__(self, step):
        rate = self.scale * self.schedule(step)
        step = ops.cast(step, "float32")
        return ops.where(step < float(self.frozen_steps), 0.0, rate)

    def get_config(self):
        config = super().get_config()
        config["schedule"] = keras.optimizers.schedules.serialize(self.schedule)
        return config
