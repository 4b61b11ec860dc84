"""CIFAR ResNet backbones (ResNet-20/32/56/...) built from block functions.

Two variants match the DL2PA reference (He et al. 2016, Sec. 4.2 network):

- `"long_tailed"`: option-A shortcuts (identity; where the shape changes,
  spatial subsampling `x[:, ::2, ::2]` and zero channel padding), Kaiming
  normal init, global average pool, no projection (`d` = last width), then
  optionally BatchNorm on the features (the ETF long-tailed recipe).
- `"balanced"`: shortcuts that change shape are a 3x3 strided conv + BN,
  global average pool, then `Dense(last width -> dim)` with bias.

Framework conversions from the PyTorch reference:

- BatchNorm momentum 0.9 (PyTorch 0.1) and epsilon 1e-5.
- Strided 3x3 convs pad one pixel on every side (`ZeroPadding2D(1)` then a
  "valid" conv), as PyTorch's `padding=1`. Keras' "same" padding would pad
  only bottom/right at stride 2 and shift the sampling grid by one pixel
  against the option-A shortcut `x[:, ::2, ::2]`.
- Coupled L2 weight decay as in PyTorch SGD: `weight_decay` applies to every
  trainable parameter (conv kernels, dense kernel and bias, BN gamma and
  beta). PyTorch adds `wd * theta` to the gradient; `keras.regularizers.L2(l)`
  adds `l * sum(theta**2)` to the loss, whose gradient is `2 * l * theta`,
  so `l = wd / 2`.

Layer names: `stem_{conv,bn,relu}`, `stage{s}_block{b}_{pad1,conv1,bn1,relu1,
conv2,bn2,shortcut,shortcut_pad,shortcut_conv,shortcut_bn,add,out}` (stages
and blocks from 1), `avg_pool`, `projection`, `feature_bn`, `l2_normalize`.
"""

from collections.abc import Sequence
from typing import Optional

import keras
from keras import ops

from keras_dlpa.api_export import register
from keras_dlpa.models.per_channel_normalization import PerChannelNormalization
from keras_dlpa.models.regularization import batch_norm
from keras_dlpa.models.regularization import coupled_l2

VARIANTS = ("long_tailed", "balanced")


@register
class OptionAShortcut(keras.layers.Layer):
    """Parameter-free ResNet shortcut: subsample, then zero-pad channels.

    Computes `pad(x[:, ::s, ::s, :])` with `pad_before` zero channels before
    and `pad_after` after the input's channels (He et al. 2016, option A;
    the CIFAR reference pads `planes // 4` on each side).

    Args:
        strides: spatial subsampling step.
        pad_before: zero channels prepended.
        pad_after: zero channels appended.

    Input shape:
        `(B, H, W, C)`.

    Output shape:
        `(B, ceil(H / s), ceil(W / s), pad_before + C + pad_after)`.
    """

    def __init__(self, strides=2, pad_before=0, pad_after=0, **kwargs):
        super().__init__(**kwargs)
        for arg, value, low in (
            ("strides", strides, 1),
            ("pad_before", pad_before, 0),
            ("pad_after", pad_after, 0),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(
                    f"`{arg}` must be an integer >= {low}. "
                    f"Received: {arg}={value!r}"
                )
        self.strides = strides
        self.pad_before = pad_before
        self.pad_after = pad_after

    def call(self, inputs):
        s = self.strides
        x = inputs[:, ::s, ::s, :]
        return ops.pad(
            x, [[0, 0], [0, 0], [0, 0], [self.pad_before, self.pad_after]]
        )

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        s = self.strides
        h = None if h is None else -(-h // s)
        w = None if w is None else -(-w // s)
        return (b, h, w, c + self.pad_before + self.pad_after)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "strides": self.strides,
                "pad_before": self.pad_before,
                "pad_after": self.pad_after,
            }
        )
        return config


def _conv3x3(x, filters, strides, name, weight_decay, pad_name):
    """3x3 conv without bias, PyTorch `padding=1` at any stride."""
    padding = "same"
    if strides > 1:
        x = keras.layers.ZeroPadding2D(1, name=pad_name)(x)
        padding = "valid"
    return keras.layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=coupled_l2(weight_decay),
        name=name,
    )(x)


def basic_block(
    x,
    filters,
    strides,
    shortcut,
    weight_decay,
    name,
    synchronized_batch_norm: bool = False,
):
    """Applies one ResNet BasicBlock (two 3x3 convs) to `x`.

    Args:
        x: tensor `(B, H, W, C_in)`.
        filters: output channels.
        strides: stride of the first conv (1 or 2).
        shortcut: `"A"` (subsample + zero-pad) or `"conv"` (3x3 strided
            conv + BN), used only where the shape changes.
        weight_decay: PyTorch-style coupled weight decay.
        name: block prefix, e.g. `"stage2_block1"`.
        synchronized_batch_norm: BatchNorm statistics over all replicas
            (see `batch_norm`).

    Returns:
        Tensor `(B, ceil(H / strides), ceil(W / strides), filters)`.
    """
    in_filters = x.shape[-1]
    residual = x
    y = _conv3x3(
        x, filters, strides, f"{name}_conv1", weight_decay, f"{name}_pad1"
    )
    sync = synchronized_batch_norm
    y = batch_norm(y, f"{name}_bn1", weight_decay, sync)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv3x3(y, filters, 1, f"{name}_conv2", weight_decay, None)
    y = batch_norm(y, f"{name}_bn2", weight_decay, sync)
    if strides != 1 or in_filters != filters:
        if shortcut == "A":
            if filters < in_filters:
                raise ValueError(
                    "Option-A shortcuts can only add channels. Received "
                    f"{in_filters} -> {filters} channels in block {name}."
                )
            extra = filters - in_filters
            residual = OptionAShortcut(
                strides=strides,
                pad_before=extra // 2,
                pad_after=extra - extra // 2,
                name=f"{name}_shortcut",
            )(x)
        else:
            residual = _conv3x3(
                x,
                filters,
                strides,
                f"{name}_shortcut_conv",
                weight_decay,
                f"{name}_shortcut_pad",
            )
            residual = batch_norm(
                residual, f"{name}_shortcut_bn", weight_decay, sync
            )
    y = keras.layers.Add(name=f"{name}_add")([y, residual])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def _check_input_shape(input_shape):
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or not all(
            d is None or (isinstance(d, int) and d > 0) for d in input_shape
        )
        or input_shape[-1] is None
    ):
        raise ValueError(
            "`input_shape` must be (height, width, channels) with positive "
            "integers (height/width may be None). "
            f"Received: input_shape={input_shape!r}"
        )
    return tuple(input_shape)


def image_inputs(input_shape, mean, std, name="images"):
    """Returns `(inputs, x)`: an image `Input` and the normalised tensor.

    `x` is `PerChannelNormalization(mean, std)(inputs)` when both statistics
    are given, else `inputs` itself.
    """
    input_shape = _check_input_shape(input_shape)
    if (mean is None) != (std is None):
        raise ValueError(
            "Pass both `mean` and `std` (or neither). Received: "
            f"mean={mean!r}, std={std!r}"
        )
    inputs = keras.Input(shape=input_shape, name=name)
    x = inputs
    if mean is not None:
        x = PerChannelNormalization(mean, std, name="normalization")(x)
    return inputs, x


def cifar_resnet(
    depth: int = 32,
    variant: str = "long_tailed",
    dim: Optional[int] = None,
    width: int = 16,
    weight_decay: float = 0.0,
    feature_batchnorm: Optional[bool] = None,
    l2_normalize: bool = False,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    input_shape: tuple = (32, 32, 3),
    name: Optional[str] = None,
    synchronized_batch_norm: bool = False,
) -> keras.Model:
    """Builds a CIFAR ResNet feature backbone (images -> features).

    Three stages of `(depth - 2) / 6` BasicBlocks with widths `width`,
    `2 * width`, `4 * width` (strides 1, 2, 2) after a 3x3 stem conv.

    Args:
        depth: `6 n + 2` (20, 32, 44, 56, 110).
        variant: `"long_tailed"` (option-A shortcuts, no projection,
            `d = 4 * width`) or `"balanced"` (conv shortcuts,
            `Dense(4 * width -> dim)` with bias).
        dim: feature size `d`. Required for `"balanced"`; for
            `"long_tailed"` it may be None or must equal `4 * width`.
        width: first-stage width (16 for 16/32/64, 32 for 32/64/128).
        weight_decay: PyTorch SGD weight decay, applied as coupled L2 on all
            trainable parameters (Keras factor `weight_decay / 2`).
            Recipes use 2e-4 (long-tailed) and 1e-4 (balanced).
        feature_batchnorm: BatchNorm on the pooled features (the ETF
            long-tailed head). None: True for `"long_tailed"`, False for
            `"balanced"`.
        l2_normalize: L2-normalise the output features. Off by default:
            the prototype layer normalises its input itself.
        mean: per-channel mean of raw inputs (e.g. `CIFAR10_MEAN`, 0-255
            units); with `std` adds a `PerChannelNormalization` first layer.
        std: per-channel standard deviation, same units.
        input_shape: `(H, W, C)`.
        name: model name; default `f"resnet{depth}_{variant}"`.
        synchronized_batch_norm: if True, every BatchNorm (the feature
            BatchNorm included) normalises with the statistics of the
            global batch over all replicas of a `tf.distribute` strategy
            (Keras `BatchNormalization(synchronized=True)`), so training
            on N replicas follows the 1-device trajectory. Default False:
            per-replica statistics, as PyTorch `DataParallel`/DDP without
            `SyncBatchNorm`. No effect on one device or on JAX. Saved in
            the layers' configs.

    Returns:
        A functional `keras.Model` mapping `(B, H, W, C)` images to
        `(B, d)` features.

    Example:

    >>> model = cifar_resnet(32, "long_tailed", width=16)
    >>> model.output_shape
    (None, 64)
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"`variant` must be one of {VARIANTS}. "
            f"Received: variant={variant!r}"
        )
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            "`depth` must be 6 n + 2 with n >= 1 (20, 32, 56, ...). "
            f"Received: depth={depth!r}"
        )
    if not isinstance(width, int) or width <= 0:
        raise ValueError(
            f"`width` must be a positive integer. Received: width={width!r}"
        )
    if weight_decay < 0:
        raise ValueError(
            "`weight_decay` must be >= 0. "
            f"Received: weight_decay={weight_decay!r}"
        )
    last = 4 * width
    if variant == "long_tailed":
        if dim is not None and dim != last:
            raise ValueError(
                "The long-tailed variant has no projection, so `dim` must be "
                f"None or the last width 4 * width = {last}. Received: "
                f"dim={dim!r} with width={width}. Change `width` or use "
                'variant="balanced".'
            )
    elif not isinstance(dim, int) or dim <= 0:
        raise ValueError(
            "The balanced variant needs a positive integer `dim` (the "
            f"Dense(4 * width -> dim) output). Received: dim={dim!r}"
        )
    if feature_batchnorm is None:
        feature_batchnorm = variant == "long_tailed"
    shortcut = "A" if variant == "long_tailed" else "conv"
    blocks = (depth - 2) // 6

    inputs, x = image_inputs(input_shape, mean, std)
    x = _conv3x3(x, width, 1, "stem_conv", weight_decay, None)
    sync = bool(synchronized_batch_norm)
    x = batch_norm(x, "stem_bn", weight_decay, sync)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, (filters, strides) in enumerate(
        ((width, 1), (2 * width, 2), (4 * width, 2)), start=1
    ):
        for block in range(1, blocks + 1):
            x = basic_block(
                x,
                filters,
                strides if block == 1 else 1,
                shortcut,
                weight_decay,
                name=f"stage{stage}_block{block}",
                synchronized_batch_norm=sync,
            )
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if variant == "balanced":
        x = keras.layers.Dense(
            dim,
            kernel_regularizer=coupled_l2(weight_decay),
            bias_regularizer=coupled_l2(weight_decay),
            name="projection",
        )(x)
    if feature_batchnorm:
        x = batch_norm(x, "feature_bn", weight_decay, sync)
    if l2_normalize:
        x = keras.layers.UnitNormalization(name="l2_normalize")(x)
    return keras.Model(inputs, x, name=name or f"resnet{depth}_{variant}")


def cifar_resnet32(variant: str = "long_tailed", **kwargs) -> keras.Model:
    """ResNet-32 (5 BasicBlocks per stage); see `cifar_resnet` for args."""
    return cifar_resnet(32, variant, **kwargs)
