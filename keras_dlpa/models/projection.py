"""Feature projection: `Dense(dim, no bias)` + BatchNorm on a feature tensor."""

import numbers

import keras

from keras_dlpa.models.regularization import batch_norm
from keras_dlpa.models.regularization import coupled_l2


def project_features(
    x, dim: int, weight_decay: float = 0.0, synchronized_batch_norm=False
):
    """Adds `Dense(dim, no bias)` + BatchNorm to the feature tensor `x`.

    Used when a backbone's features (a long-tailed CIFAR ResNet with `d` =
    last width, or a pretrained trunk's pooled features) must have another
    size `d`: features are projected, then batch normalised like the
    long-tailed feature head (PyTorch-style BatchNorm, momentum 0.1 in
    PyTorch terms, epsilon 1e-5). Coupled L2 as the backbone
    (`weight_decay / 2`). Layer names: `"feature_projection"`,
    `"projection_bn"`.

    Args:
        x: symbolic features `(B, d_in)`.
        dim: output size `d`, a positive integer.
        weight_decay: PyTorch SGD weight decay of the two layers.
        synchronized_batch_norm: BatchNorm statistics over the global batch
            under a `tf.distribute` strategy (see `cifar_resnet`).

    Returns:
        The projected features `(B, dim)`.
    """
    if (
        not isinstance(dim, numbers.Integral)
        or isinstance(dim, bool)
        or dim <= 0
    ):
        raise ValueError(
            f"`dim` must be a positive integer. Received: dim={dim!r}"
        )
    x = keras.layers.Dense(
        int(dim),
        use_bias=False,
        kernel_regularizer=coupled_l2(weight_decay),
        name="feature_projection",
    )(x)
    return batch_norm(x, "projection_bn", weight_decay, synchronized_batch_norm)
