"""CIFAR ResNet backbones (ResNet-20/32/56/...) built from block functions.

Two variants match the DL2PA reference (He et al. 2016, Sec. 4.2 network):
`"long_tailed"` (option-A shortcuts, no projection, BatchNorm on the
features) and `"balanced"` (conv shortcuts, `Dense(last width -> dim)`).
The conversions from the PyTorch reference (BatchNorm momentum/epsilon,
`padding=1` on strided convs, coupled weight decay) are in
docs/backbones.md.

Layer names: `stem_{conv,bn,relu}`, `stage{s}_block{b}_{pad1,conv1,bn1,relu1,
conv2,bn2,shortcut,shortcut_pad,shortcut_conv,shortcut_bn,add,out}` (stages
and blocks from 1), `avg_pool`, `projection`, `feature_bn`.
"""

from typing import Optional

import keras
from keras import ops

from keras_dlpa.api_export import register
from keras_dlpa.checks import check_choice
from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number
from keras_dlpa.models.per_channel_normalization import image_inputs
from keras_dlpa.models.regularization import batch_norm
from keras_dlpa.models.regularization import coupled_l2

VARIANTS = ("long_tailed", "balanced")


@register
class OptionAShortcut(keras.layers.Layer):
    """Parameter-free ResNet shortcut: subsample, then zero-pad channels.

    `pad(x[:, ::s, ::s, :])` with `pad_before` zero channels before and
    `pad_after` after the input's (He et al. 2016, option A).

    Args:
        strides: spatial subsampling step `s`.
        pad_before: zero channels prepended.
        pad_after: zero channels appended.

    Input shape:
        `(B, H, W, C)`.

    Output shape:
        `(B, ceil(H / s), ceil(W / s), pad_before + C + pad_after)`.
    """

    def __init__(self, strides=2, pad_before=0, pad_after=0, **kwargs):
        super().__init__(**kwargs)
        self.strides = check_int("strides", strides)
        self.pad_before = check_int("pad_before", pad_before, minimum=0)
        self.pad_after = check_int("pad_after", pad_after, minimum=0)

    def call(self, inputs):
        s = self.strides
        pads = [[0, 0], [0, 0], [0, 0], [self.pad_before, self.pad_after]]
        return ops.pad(inputs[:, ::s, ::s, :], pads)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        h, w = (None if d is None else -(-d // self.strides) for d in (h, w))
        return (b, h, w, c + self.pad_before + self.pad_after)

    def get_config(self):
        config = super().get_config()
        config.update(strides=self.strides, pad_before=self.pad_before)
        config.update(pad_after=self.pad_after)
        return config


def _conv_bn(x, filters, strides, name, weight_decay, sync, suffix=""):
    """3x3 conv without bias (PyTorch `padding=1` at any stride) + BatchNorm,
    layers `{name}_conv{suffix}`, `{name}_bn{suffix}`, `{name}_pad{suffix}`."""
    padding = "same"
    if strides > 1:
        # Keras "same" pads only bottom/right at stride 2, which would shift
        # the grid against the option-A shortcut `x[:, ::2, ::2]`.
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad{suffix}")(x)
        padding = "valid"
    x = keras.layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=coupled_l2(weight_decay),
        name=f"{name}_conv{suffix}",
    )(x)
    return batch_norm(x, f"{name}_bn{suffix}", weight_decay, sync)


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
        synchronized_batch_norm: BatchNorm statistics over all replicas.

    Returns:
        Tensor `(B, ceil(H / strides), ceil(W / strides), filters)`.
    """
    in_filters = x.shape[-1]
    sync = synchronized_batch_norm
    y = _conv_bn(x, filters, strides, name, weight_decay, sync, "1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv_bn(y, filters, 1, name, weight_decay, sync, "2")
    residual = x
    if (strides != 1 or in_filters != filters) and shortcut == "A":
        if filters < in_filters:
            raise ValueError(
                "Option-A shortcuts can only add channels. Received "
                f"{in_filters} -> {filters} channels in block {name}."
            )
        extra = filters - in_filters
        pads = (extra // 2, extra - extra // 2)
        residual = OptionAShortcut(strides, *pads, name=f"{name}_shortcut")(x)
    elif strides != 1 or in_filters != filters:
        args = (filters, strides, f"{name}_shortcut", weight_decay, sync)
        residual = _conv_bn(x, *args)
    y = keras.layers.Add(name=f"{name}_add")([y, residual])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def cifar_resnet(
    depth: int = 32,
    variant: str = "long_tailed",
    dim: Optional[int] = None,
    width: int = 16,
    weight_decay: float = 0.0,
    input_statistics: Optional[tuple] = None,
    input_shape: tuple = (32, 32, 3),
    synchronized_batch_norm: bool = False,
) -> keras.Model:
    """Builds a CIFAR ResNet feature backbone (images -> features).

    Three stages of `(depth - 2) / 6` BasicBlocks with widths `width`,
    `2 * width`, `4 * width` (strides 1, 2, 2) after a 3x3 stem conv. The
    model is named `f"resnet{depth}_{variant}"`.

    Args:
        depth: `6 n + 2` (20, 32, 44, 56, 110).
        variant: `"long_tailed"` (option-A shortcuts, no projection,
            BatchNorm on the features, `d = 4 * width`) or `"balanced"`
            (conv shortcuts, `Dense(4 * width -> dim)` with bias).
        dim: feature size `d`. Required for `"balanced"`; for
            `"long_tailed"` None or `4 * width`.
        width: first-stage width (16 for 16/32/64, 32 for 32/64/128).
        weight_decay: PyTorch SGD weight decay, applied as coupled L2 on all
            trainable parameters (Keras factor `weight_decay / 2`).
        input_statistics: `(mean, std)` per channel of the raw inputs (e.g.
            `(CIFAR10_MEAN, CIFAR10_STD)`, 0-255 units): adds a
            `PerChannelNormalization` first layer. None: no normalisation.
        input_shape: `(H, W, C)`.
        synchronized_batch_norm: BatchNorm statistics over the global
            batch of all replicas of a `tf.distribute` strategy (saved in
            the configs; docs/distributed.md); default per replica.

    Returns:
        A functional `keras.Model`, images `(B, H, W, C)` -> `(B, d)`.
    """
    check_choice("variant", variant, VARIANTS)
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            "`depth` must be 6 n + 2 with n >= 1 (20, 32, 56, ...). "
            f"Received: depth={depth!r}"
        )
    width = check_int("width", width)
    check_number("weight_decay", weight_decay, closed=True)
    last = 4 * width
    if variant == "long_tailed" and dim not in (None, last):
        raise ValueError(
            "The long-tailed variant has no projection, so `dim` must be "
            f"None or the last width 4 * width = {last}. Received: "
            f"dim={dim!r} with width={width}. Change `width` or use "
            'variant="balanced".'
        )
    if variant == "balanced" and (not isinstance(dim, int) or dim <= 0):
        raise ValueError(
            "The balanced variant needs a positive integer `dim` (the "
            f"Dense(4 * width -> dim) output). Received: dim={dim!r}"
        )
    sync = bool(synchronized_batch_norm)
    inputs, x = image_inputs(input_shape, input_statistics)
    x = _conv_bn(x, width, 1, "stem", weight_decay, sync)
    x = keras.layers.ReLU(name="stem_relu")(x)
    args = ("A" if variant == "long_tailed" else "conv", weight_decay)
    for stage, (filters, strides) in enumerate(
        ((width, 1), (2 * width, 2), (4 * width, 2)), start=1
    ):
        for block in range(1, (depth - 2) // 6 + 1):
            stride = strides if block == 1 else 1
            name = f"stage{stage}_block{block}"
            x = basic_block(x, filters, stride, *args, name, sync)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if variant == "balanced":
        x = keras.layers.Dense(
            dim,
            kernel_regularizer=coupled_l2(weight_decay),
            bias_regularizer=coupled_l2(weight_decay),
            name="projection",
        )(x)
    else:
        x = batch_norm(x, "feature_bn", weight_decay, sync)
    return keras.Model(inputs, x, name=f"resnet{depth}_{variant}")


def cifar_resnet32(variant: str = "long_tailed", **kwargs) -> keras.Model:
    """ResNet-32 (5 BasicBlocks per stage); see `cifar_resnet` for args."""
    return cifar_resnet(32, variant, **kwargs)
