"""PyTorch-equivalent weight decay and BatchNorm for the Keras backbones."""

import keras

# PyTorch's BatchNorm defaults: momentum 0.1 (Keras 0.9) and eps 1e-5.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def coupled_l2(weight_decay: float):
    """Keras L2 factor equal to PyTorch SGD's coupled `weight_decay`."""
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None


def batch_norm(x, name, weight_decay, synchronized: bool = False):
    """PyTorch-style BatchNorm (momentum 0.1, eps 1e-5), coupled L2.

    `synchronized=True` computes the batch statistics over the global batch
    of all replicas under a `tf.distribute` strategy (Keras
    `BatchNormalization(synchronized=True)`; no effect without a strategy
    and on the JAX backend, where the compiled step sees the global batch).
    """
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        gamma_regularizer=coupled_l2(weight_decay),
        beta_regularizer=coupled_l2(weight_decay),
        synchronized=bool(synchronized),
        name=name,
    )(x)
