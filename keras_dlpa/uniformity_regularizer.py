"""Hyperspherical uniformity of classifier weights (paper Eq. 4, PSC*)."""

from __future__ import annotations

import keras
from keras import ops

from keras_dlpa.api_export import register
from keras_dlpa.checks import check_choice
from keras_dlpa.checks import check_number


def hyperspherical_uniformity(vectors, temperature: float = 2.0):
    """Gaussian-potential uniformity of the rows of `vectors` (Eq. 4).

    `log (1 / c^2) sum_{i,j} exp(2t (u_i . u_j - 1))` over the unit rows
    `u_i` (self terms included): `keras_dlpa.prototypes.uniformity_loss(v,
    pairs="all")` in `keras.ops`. Eq. 5 with the whole set normalises by
    `1 / c` instead: the same gradient.

    Args:
        vectors: float tensor `(c, d)`, one vector per row (any norm).
        temperature: `t > 0`.

    Returns:
        A float scalar in `[-log c, 0]` (lower is more uniform).
    """
    v = ops.convert_to_tensor(vectors)
    if len(v.shape) != 2:
        raise ValueError(
            "`vectors` must be a 2-D tensor (c, d). Received: "
            f"shape={tuple(v.shape)}"
        )
    u = v / ops.maximum(ops.norm(v, axis=-1, keepdims=True), 1e-12)
    cosines = ops.matmul(u, ops.transpose(u))
    potential = ops.exp((2.0 * temperature) * (cosines - 1.0))
    return ops.log(ops.mean(potential))


@register
class UniformityRegularizer(keras.regularizers.Regularizer):
    """`strength * hyperspherical_uniformity(W) + l2 * sum(W^2)`.

    The regulariser of the paper's PSC* baseline (Table 8: cross-entropy +
    `1e-2 x L_uni` on the softmax classifier's class weight vectors); `l2`
    carries the weight decay of the same kernel.

    Args:
        strength: `lambda >= 0`, the weight of the uniformity term.
        temperature: `t > 0` of the Gaussian potential (the paper gives none
            for PSC*: the `t = 2` of its prototype estimation).
        l2: L2 factor (Keras `L2(l2)`), `>= 0`.
        axis: the kernel axis of one vector's components: `0` for a `Dense`
            kernel `(d, c)`, `1` for a `(c, d)` matrix.

    Example:

    >>> layer = keras.layers.Dense(
    ...     10, kernel_regularizer=UniformityRegularizer(1e-2)
    ... )
    """

    def __init__(
        self,
        strength: float = 1e-2,
        temperature: float = 2.0,
        l2: float = 0.0,
        axis: int = 0,
    ):
        self.strength = check_number("strength", strength, closed=True)
        self.temperature = check_number("temperature", temperature)
        self.l2 = check_number("l2", l2, closed=True)
        self.axis = int(check_choice("axis", axis, (0, 1)))

    def __call__(self, x):
        if len(x.shape) != 2:
            raise ValueError(
                "UniformityRegularizer needs a 2-D kernel. Received: "
                f"shape={tuple(x.shape)}"
            )
        vectors = ops.transpose(x) if self.axis == 0 else x
        loss = self.strength * hyperspherical_uniformity(
            vectors, self.temperature
        )
        if self.l2:
            loss = loss + self.l2 * ops.sum(ops.square(x))
        return loss

    def get_config(self) -> dict:
        names = ("strength", "temperature", "l2", "axis")
        return {name: getattr(self, name) for name in names}
