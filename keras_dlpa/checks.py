"""Argument checks shared by the package: each raises a `ValueError` that
names the argument, the value received and what was expected."""

from __future__ import annotations

import math
import numbers


def check_int(name: str, value, minimum: int = 1, allow_none: bool = False):
    """`int(value)`, or a `ValueError` unless `value` is an integer (not a
    bool) >= `minimum` (or None where `allow_none`)."""
    if value is None and allow_none:
        return None
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if (
        not (real and math.isfinite(value))
        or value != int(value)
        or value < minimum
    ):
        extra = " or None" if allow_none else ""
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}{extra}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_number(
    name: str,
    value,
    low: float = 0.0,
    high: float = math.inf,
    closed: bool = False,
) -> float:
    """`float(value)`, or a `ValueError` unless `value` is a finite real in
    `(low, high]` (`[low, high]` where `closed`)."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    number = float(value) if real else math.nan
    above = number >= low if closed else number > low
    if not (math.isfinite(number) and above and number <= high):
        interval = f"{'[' if closed else '('}{low:g}, {high:g}]"
        raise ValueError(
            f"`{name}` must be a finite number in {interval}. "
            f"Received: {name}={value!r}"
        )
    return number


def check_choice(name: str, value, choices):
    """`value`, or a `ValueError` unless it is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {tuple(choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def require_tensorflow(what: str) -> None:
    """A `RuntimeError` unless Keras runs on TensorFlow, which `what` needs."""
    import keras

    if (backend := keras.backend.backend()) != "tensorflow":
        raise RuntimeError(
            f"{what} needs the TensorFlow backend. Received: KERAS_BACKEND="
            f"{backend!r}; run it with KERAS_BACKEND=tensorflow (a .keras "
            "file trained on JAX or torch loads there unchanged)."
        )
