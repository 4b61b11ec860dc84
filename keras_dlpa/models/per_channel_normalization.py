"""Per-channel input standardisation that lives inside the model."""

from collections.abc import Sequence
from typing import Union

import keras
from keras import ops

from keras_dlpa.api_export import register

FloatOrSeq = Union[float, Sequence[float]]

# Dataset statistics in 0-255 pixel units (per RGB channel) over the training
# splits: the usual 0-1 values (e.g. CIFAR-10 mean 0.4914, 0.4822, 0.4465 and
# pixel std 0.2470, 0.2435, 0.2616) times 255.
CIFAR10_MEAN = (125.3069, 122.9504, 113.8655)
CIFAR10_STD = (62.9932, 62.0887, 66.7049)
CIFAR100_MEAN = (129.3042, 124.07, 112.4341)
CIFAR100_STD = (68.1702, 65.3918, 70.4184)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def _as_floats(value, arg: str) -> tuple:
    """`value` (a float or a non-empty sequence) as a tuple of floats."""
    if isinstance(value, (int, float)):
        return (float(value),)
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    if not values:
        raise ValueError(
            f"`{arg}` must be a float or a non-empty sequence of floats, one "
            f"per channel. Received: {arg}={value!r}"
        )
    return values


@register
class PerChannelNormalization(keras.layers.Layer):
    """Maps raw images to `(x - mean) / std`, per channel.

    The statistics are stored in the config and as non-trainable weights
    (not graph constants, which ONNX export would turn into inputs), so a
    saved or exported model serves raw images of any dtype.

    Args:
        mean: float or sequence of `C` floats, in the units of the raw input
            (for 0-255 pixels e.g. `CIFAR10_MEAN`).
        std: float or sequence of `C` positive floats, same units.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Input shape:
        `(..., C)`.

    Output shape:
        Same as the input, compute dtype.
    """

    def __init__(self, mean: FloatOrSeq, std: FloatOrSeq, **kwargs):
        super().__init__(**kwargs)
        mean = _as_floats(mean, "mean")
        std = _as_floats(std, "std")
        if len(mean) != len(std) and 1 not in (len(mean), len(std)):
            raise ValueError(
                "`mean` and `std` must have the same length (one value per "
                f"channel). Received: len(mean)={len(mean)}, "
                f"len(std)={len(std)}"
            )
        if any(s <= 0.0 for s in std):
            raise ValueError(
                f"All `std` values must be positive. Received: std={std}"
            )
        self.mean = mean
        self.std = std
        self.supports_masking = True

    def build(self, input_shape):
        channels = input_shape[-1]
        for arg, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(
                    f"`{arg}` has {len(values)} values but the input has "
                    f"{channels} channels (input shape {input_shape}). "
                    f"Pass one value or one per channel."
                )
            weight = self.add_weight(
                shape=(channels,),
                initializer=keras.initializers.Constant(
                    list(values) * (channels // len(values))
                ),
                trainable=False,
                name=arg,
            )
            setattr(self, f"{arg}_weight", weight)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        mean = ops.cast(self.mean_weight, self.compute_dtype)
        std = ops.cast(self.std_weight, self.compute_dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mean": list(self.mean), "std": list(self.std)})
        return config


def check_image_shape(input_shape, channels=None) -> tuple:
    """`input_shape` as `(H, W, C)` (H, W positive or None), or a ValueError."""
    ok = isinstance(input_shape, (tuple, list)) and len(input_shape) == 3
    if not (
        ok
        and all(
            d is None or (isinstance(d, int) and d > 0) for d in input_shape
        )
        and input_shape[-1] is not None
        and channels in (None, input_shape[-1])
    ):
        raise ValueError(
            f"`input_shape` must be (height, width, {channels or 'channels'})"
            ", channels last, positive integers (height and width may be "
            f"None). Received: input_shape={input_shape!r}"
        )
    return tuple(input_shape)


def image_inputs(input_shape, input_statistics=None):
    """`(inputs, x)`: the `"images"` Input and, with `input_statistics =
    (mean, std)`, a `PerChannelNormalization` of it (else `inputs`)."""
    input_shape = check_image_shape(input_shape)
    if input_statistics is not None and (
        not isinstance(input_statistics, (tuple, list))
        or len(input_statistics) != 2
        or any(s is None for s in input_statistics)
    ):
        raise ValueError(
            "`input_statistics` must be None or a pair (mean, std). "
            f"Received: input_statistics={input_statistics!r}"
        )
    inputs = keras.Input(shape=input_shape, name="images")
    if input_statistics is None:
        return inputs, inputs
    mean, std = input_statistics
    return inputs, PerChannelNormalization(mean, std, name="normalization")(
        inputs
    )
