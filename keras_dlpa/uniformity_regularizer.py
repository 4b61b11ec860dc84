"""Hyperspherical uniformity of classifier weights (paper Eq. 4, PSC*)."""

from __future__ import annotations

import keras
from keras import ops

from keras_dlpa.api_export import register


def hyperspherical_uniformity(vectors, temperature: float = 2.0):
    """Gaussian-potential uniformity of the rows of `vectors` (Eq. 4).

    With `u_i = v_i / ||v_i||` and `G_ij = exp(-t ||u_i - u_j||^2) =
    exp(2t (u_i . u_j - 1))`, returns `log (1 / c^2) sum_{i,j} G_ij`: paper
    Eq. 4 with `p_w` the empirical distribution of the `c` rows (pairs
    drawn i.i.d., so the `c` self terms `G_ii = 1` are included). This is
    `keras_dlpa.prototypes.uniformity_loss(v, pairs="all")` (the loss the
    prototypes are estimated with), in `keras.ops`. The literal Eq. 5 with
    the whole set (`c-hat = c`) normalises by `1 / c` instead of `1 / c^2`:
    the same loss plus the constant `log c`, so the same gradient. (The
    reference code's prototype estimation averages over the pairs `i < j`
    only, `pairs="subset"`: its gradient is this one times
    `(S + c) / S`, with `S` the off-diagonal sum.)

    Args:
        vectors: float tensor `(c, d)`, one vector per row (any norm).
        temperature: `t > 0` (the reference code's 2).

    Returns:
        A float scalar in `[-log c, 0]` (lower is more uniform).
    """
    v = ops.convert_to_tensor(vectors)
    if len(v.shape) != 2:
        raise ValueError(
            "Argument `vectors` must be a 2-D tensor (c, d). Received: "
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
    `1e-2 x L_uni` on the softmax classifier's weights): it pulls the class
    weight vectors of a `Dense(c)` kernel `(d, c)` (its columns, unit
    normalised inside the loss) towards a uniform distribution on the
    hypersphere, with the Gaussian potential of paper Eq. 4 (see
    `hyperspherical_uniformity`; the paper gives no temperature for PSC*,
    so the `t = 2` of its prototype estimation is the default). `l2` adds
    the usual L2 term, so one regulariser carries the weight decay of the
    same kernel (`Dense` takes one `kernel_regularizer`).

    Args:
        strength: `lambda >= 0`, the weight of the uniformity term.
        temperature: `t > 0` of the Gaussian potential.
        l2: L2 factor (Keras `L2(l2)`), `>= 0`.
        axis: the axis of the kernel that holds one vector's components:
            `0` for a `Dense` kernel `(d, c)` (one class per column), `1`
            for a `(c, d)` matrix (one class per row).

    Call arguments:
        x: a 2-D weight tensor.

    Returns:
        A float scalar.

    Example:

    >>> layer = keras.layers.Dense(
    ...     10, kernel_regularizer=UniformityRegularizer(1e-2)
    ... )

    Reference: M. Saadabadi et al., "Hyperspherical Classification with
    Dynamic Label-to-Prototype Assignment", CVPR 2024, Sec. 3.2.1 and
    Table 8; T. Wang and P. Isola, ICML 2020 (the Gaussian potential).
    """

    def __init__(
        self,
        strength: float = 1e-2,
        temperature: float = 2.0,
        l2: float = 0.0,
        axis: int = 0,
    ):
        if not float(strength) >= 0.0:
            raise ValueError(
                f"Argument `strength` must be >= 0. Received: {strength!r}"
            )
        if not float(temperature) > 0.0:
            raise ValueError(
                f"Argument `temperature` must be > 0. Received: {temperature!r}"
            )
        if not float(l2) >= 0.0:
            raise ValueError(f"Argument `l2` must be >= 0. Received: {l2!r}")
        if axis not in (0, 1):
            raise ValueError(
                "Argument `axis` must be 0 (a Dense kernel (d, c)) or 1 (a "
                f"(c, d) matrix). Received: axis={axis!r}"
            )
        self.strength = float(strength)
        self.temperature = float(temperature)
        self.l2 = float(l2)
        self.axis = int(axis)

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
        return {
            "strength": self.strength,
            "temperature": self.temperature,
            "l2": self.l2,
            "axis": self.axis,
        }
