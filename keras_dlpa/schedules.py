"""Learning-rate schedules of the DL2PA recipes (warm-up + decay)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import ops

from keras_dlpa.api_export import register


def _check_positive_int(name, value, minimum=1):
    if int(value) != value or value < minimum:
        raise ValueError(
            f"Argument `{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def _check_base_rate(value) -> float:
    if not value > 0:
        raise ValueError(
            f"Argument `base_learning_rate` must be > 0. Received: {value!r}"
        )
    return float(value)


def _linear_warmup(lr, step, base_learning_rate, warmup_steps: float):
    """`lr`, except `base * (step + 1) / warmup_steps` before `warmup_steps`."""
    if warmup_steps <= 0:
        return lr
    ramp = base_learning_rate * (step + 1.0) / warmup_steps
    return ops.where(step < warmup_steps, ramp, lr)


@register
class WarmupMultiStep(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then step decay by `gamma` at given epochs.

    With `s` the optimizer step (`optimizer.iterations`, 0-based),
    `S = steps_per_epoch` and `e = s // S` the epoch:

    - warm-up (`s < warmup_epochs * S`):
      `lr = base * (s + 1) / (warmup_epochs * S)`, a linear ramp per step
      that reaches `base` at the last warm-up step;
    - afterwards: `lr = base * gamma ** k` with `k` the number of
      `milestones` `<= e`.

    The schedule is a pure function of the step, so a resumed run that
    restores the optimizer's iteration counter continues with the same
    learning rates. It serialises with its config (`.keras` archives).

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
        self.base_learning_rate = _check_base_rate(base_learning_rate)
        self.steps_per_epoch = _check_positive_int(
            "steps_per_epoch", steps_per_epoch
        )
        self.warmup_epochs = _check_positive_int(
            "warmup_epochs", warmup_epochs, minimum=0
        )
        milestones = [int(m) for m in milestones]
        if milestones != sorted(milestones) or any(m < 0 for m in milestones):
            raise ValueError(
                "Argument `milestones` must be non-negative epochs in "
                f"increasing order. Received: {milestones}"
            )
        self.milestones = milestones
        if not gamma > 0:
            raise ValueError(f"Argument `gamma` must be > 0. Received: {gamma}")
        self.gamma = float(gamma)
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

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_epochs": self.warmup_epochs,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
            "name": self.name,
        }


@register
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then cosine decay to `final_learning_rate`.

    Warm-up as in `WarmupMultiStep`; afterwards, with
    `t = (s - W) / (T - W)` clipped to `[0, 1]` (`W` warm-up steps,
    `T = epochs * steps_per_epoch`),
    `lr = final + (base - final) * (1 + cos(pi t)) / 2` (the ImageNet
    recipe of the reference).

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
        self.base_learning_rate = _check_base_rate(base_learning_rate)
        self.steps_per_epoch = _check_positive_int(
            "steps_per_epoch", steps_per_epoch
        )
        self.epochs = _check_positive_int("epochs", epochs)
        self.warmup_epochs = _check_positive_int(
            "warmup_epochs", warmup_epochs, minimum=0
        )
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                f"Argument `warmup_epochs` ({warmup_epochs}) must be at most "
                f"`epochs` ({epochs})."
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

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "warmup_epochs": self.warmup_epochs,
            "final_learning_rate": self.final_learning_rate,
            "name": self.name,
        }


@register
class FrozenThenScaled(keras.optimizers.schedules.LearningRateSchedule):
    """`scale * schedule(step)`, and 0 for the first `frozen_steps` steps.

    The trunk's rate in fine-tuning: a frozen-trunk warm-up (rate 0, so
    SGD leaves the trunk's weights unchanged) followed by discriminative
    learning rates (the trunk at `scale` times the head's rate). A pure
    function of the iteration counter, so resume stays exact and no
    re-compile is needed when the trunk starts learning.

    Args:
        schedule: the head's `LearningRateSchedule`.
        scale: factor of the trunk's rate (> 0).
        frozen_steps: optimizer steps with rate 0.
    """

    def __init__(self, schedule, scale: float = 1.0, frozen_steps: int = 0):
        if isinstance(schedule, dict):
            schedule = keras.optimizers.schedules.deserialize(schedule)
        if not scale > 0:
            raise ValueError(
                f"Argument `scale` must be > 0. Received: scale={scale!r}"
            )
        self.schedule = schedule
        self.scale = float(scale)
        self.frozen_steps = _check_positive_int(
            "frozen_steps", frozen_steps, minimum=0
        )

    def __call__(self, step):
        rate = self.scale * self.schedule(step)
        step = ops.cast(step, "float32")
        return ops.where(step < float(self.frozen_steps), 0.0, rate)

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "scale": self.scale,
            "frozen_steps": self.frozen_steps,
        }
