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
    if isinstance(value, (int, float)):
        return (float(value),)
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`{arg}` must be a float or a sequence of floats, one per "
            f"channel. Received: {arg}={value!r}"
        ) from error
    if not values:
        raise ValueError(f"`{arg}` must not be empty. Received: {arg}={value}")
    return values


@register
class PerChannelNormalization(keras.layers.Layer):
    """Maps raw images to `(x - mean) / std`, per channel.

    The statistics are stored in the layer config and as non-trainable
    weights (never as graph constants), so a saved or exported model serves
    raw images (for example uint8 pixels cast to float) and ONNX export does
    not turn the statistics into spurious inputs. Inputs of any dtype are
    cast to the layer's compute dtype first.

    Args:
        mean: float or sequence of `C` floats, in the units of the raw input
            (for 0-255 pixels use e.g. `CIFAR10_MEAN`).
        std: float or sequence of `C` floats, all positive, same units.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Input shape:
        `(..., C)`.

    Output shape:
        Same as the input, compute dtype.

    Example:

    >>> layer = PerChannelNormalization(mean=[128.0] * 3, std=[64.0] * 3)
    >>> x = np.full((1, 2, 2, 3), 192.0, "float32")
    >>> np.asarray(layer(x))[0, 0, 0].tolist()
    [1.0, 1.0, 1.0]
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
        mean = list(self.mean) * (channels // len(self.mean))
        std = list(self.std) * (channels // len(self.std))
        self.mean_weight = self.add_weight(
            shape=(channels,),
            initializer=keras.initializers.Constant(mean),
            trainable=False,
            name="mean",
        )
        self.std_weight = self.add_weight(
            shape=(channels,),
            initializer=keras.initializers.Constant(std),
            trainable=False,
            name="std",
        )

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
