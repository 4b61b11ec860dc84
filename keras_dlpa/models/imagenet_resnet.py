"""ResNet-50 feature backbone for ImageNet-size inputs."""

from collections.abc import Sequence
from typing import Optional

import keras

from keras_dlpa.models.cifar_resnet import image_inputs
from keras_dlpa.models.pretrained_backbone import _application_trunk
from keras_dlpa.models.pretrained_backbone import _check_weights
from keras_dlpa.models.regularization import BN_MOMENTUM
from keras_dlpa.models.regularization import coupled_l2


def resnet50_backbone(
    dim: Optional[int] = 512,
    input_shape: tuple = (224, 224, 3),
    weights: Optional[str] = None,
    weight_decay: float = 0.0,
    l2_normalize: bool = False,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    name: str = "resnet50_backbone",
    synchronized_batch_norm: bool = False,
) -> keras.Model:
    """Builds the reference's ImageNet backbone: ResNet-50 + linear head.

    `keras.applications.ResNet50(include_top=False, pooling="avg")` gives
    2048 pooled features; `Dense(2048 -> dim, use_bias=False)` (named
    `"projection"`) maps them to `d`. BatchNorm momentum is set to 0.9
    (PyTorch 0.1); the Keras application's epsilon 1.001e-5 is kept.

    Args:
        dim: feature size `d`; None returns the 2048 pooled features.
        input_shape: `(H, W, C)`, H and W >= 32.
        weights: None (random init, nothing downloaded), `"imagenet"` or
            a weights file, as in `pretrained_backbone`. The ImageNet
            weights expect caffe-style inputs (BGR, mean-subtracted), not
            `(x - mean) / std`.
        weight_decay: PyTorch SGD weight decay as coupled L2 on all trainable
            parameters (Keras factor `weight_decay / 2`); reference 2e-5.
        l2_normalize: L2-normalise the output (the prototype layer already
            does, so off by default).
        mean: per-channel mean of raw inputs (e.g. `IMAGENET_MEAN`, 0-255
            units); with `std` adds a `PerChannelNormalization` first layer.
        std: per-channel standard deviation, same units.
        name: model name.
        synchronized_batch_norm: BatchNorm statistics over the global batch
            of all replicas under a `tf.distribute` strategy (see
            `cifar_resnet`); default False (per replica).

    Returns:
        A functional `keras.Model` mapping `(B, H, W, C)` to `(B, d)`; the
        ResNet-50 trunk is the nested model `"resnet50"`.

    Example:

    >>> model = resnet50_backbone(dim=512, input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 512)
    """
    if dim is not None and (not isinstance(dim, int) or dim <= 0):
        raise ValueError(
            f"`dim` must be a positive integer or None. Received: dim={dim!r}"
        )
    if weight_decay < 0:
        raise ValueError(
            "`weight_decay` must be >= 0. "
            f"Received: weight_decay={weight_decay!r}"
        )
    inputs, x = image_inputs(input_shape, mean, std)
    batch_norm = {
        "momentum": BN_MOMENTUM,
        "synchronized": bool(synchronized_batch_norm),
    }
    trunk = _application_trunk(
        "ResNet50",
        _check_weights(weights),
        tuple(input_shape),
        weight_decay,
        name="resnet50",
        batch_norm=batch_norm,
    )
    x = trunk(x)
    if dim is not None:
        x = keras.layers.Dense(
            dim,
            use_bias=False,
            kernel_regularizer=coupled_l2(weight_decay),
            name="projection",
        )(x)
    if l2_normalize:
        x = keras.layers.UnitNormalization(name="l2_normalize")(x)
    return keras.Model(inputs, x, name=name)
