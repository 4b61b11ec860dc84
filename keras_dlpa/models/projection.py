"""Feature projection: `Dense(dim, no bias)` + BatchNorm on a feature tensor."""

import keras

from keras_dlpa.checks import check_int
from keras_dlpa.models.regularization import batch_norm
from keras_dlpa.models.regularization import coupled_l2


def project_features(
    x, dim: int, weight_decay: float = 0.0, synchronized_batch_norm=False
):
    """Adds `Dense(dim, no bias)` + BatchNorm (`"feature_projection"`,
    `"projection_bn"`; PyTorch-style BatchNorm, coupled L2) to features `x`.

    Args:
        x: symbolic features `(B, d_in)`.
        dim: output size `d`, a positive integer.
        weight_decay: PyTorch SGD weight decay of the two layers.
        synchronized_batch_norm: BatchNorm statistics over the global batch
            of all replicas (see `cifar_resnet`).

    Returns:
        The projected features `(B, dim)`.
    """
    x = keras.layers.Dense(
        check_int("dim", dim),
        use_bias=False,
        kernel_regularizer=coupled_l2(weight_decay),
        name="feature_projection",
    )(x)
    return batch_norm(x, "projection_bn", weight_decay, synchronized_batch_norm)
