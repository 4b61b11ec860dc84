"""ResNet-50 feature backbone for ImageNet-size inputs."""

from typing import Optional

import keras

from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number
from keras_dlpa.models.per_channel_normalization import image_inputs
from keras_dlpa.models.pretrained_backbone import _application_trunk
from keras_dlpa.models.pretrained_backbone import _check_weights
from keras_dlpa.models.regularization import BN_MOMENTUM
from keras_dlpa.models.regularization import coupled_l2


def resnet50_backbone(
    dim: Optional[int] = 512,
    input_shape: tuple = (224, 224, 3),
    weights: Optional[str] = None,
    weight_decay: float = 0.0,
    input_statistics: Optional[tuple] = None,
    synchronized_batch_norm: bool = False,
) -> keras.Model:
    """Builds the reference's ImageNet backbone: ResNet-50 + linear head.

    `keras.applications.ResNet50(include_top=False, pooling="avg")` (nested
    as `"resnet50"`, BatchNorm momentum 0.9 as PyTorch's 0.1), then
    `Dense(2048 -> dim, use_bias=False)` (`"projection"`). The model is
    named `"resnet50_backbone"`.

    Args:
        dim: feature size `d`; None returns the 2048 pooled features.
        input_shape: `(H, W, C)`, H and W >= 32.
        weights: None (random init), `"imagenet"` or a weights file, as in
            `pretrained_backbone` (the ImageNet weights expect caffe-style
            inputs, not `(x - mean) / std`).
        weight_decay: PyTorch SGD weight decay as coupled L2 on all trainable
            parameters (Keras factor `weight_decay / 2`); reference 2e-5.
        input_statistics: `(mean, std)` per channel of the raw inputs (e.g.
            `(IMAGENET_MEAN, IMAGENET_STD)`): a `PerChannelNormalization`
            first layer.
        synchronized_batch_norm: BatchNorm statistics over the global batch
            of all replicas (see `cifar_resnet`).

    Returns:
        A functional `keras.Model`, images `(B, H, W, C)` -> `(B, d)`.
    """
    dim = check_int("dim", dim, allow_none=True)
    check_number("weight_decay", weight_decay, closed=True)
    inputs, x = image_inputs(input_shape, input_statistics)
    trunk = _application_trunk(
        "ResNet50",
        _check_weights(weights),
        tuple(input_shape),
        weight_decay,
        name="resnet50",
        batch_norm={
            "momentum": BN_MOMENTUM,
            "synchronized": bool(synchronized_batch_norm),
        },
    )
    x = trunk(x)
    if dim is not None:
        x = keras.layers.Dense(
            dim,
            use_bias=False,
            kernel_regularizer=coupled_l2(weight_decay),
            name="projection",
        )(x)
    return keras.Model(inputs, x, name="resnet50_backbone")
