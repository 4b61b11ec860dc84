"""`BakedPrototypeHead`: cosine head with the final assignment as constants."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


class BakedPrototypeHead(keras.layers.Layer):
    """Label-ordered cosine classifier with the assignment baked in.

    Serving twin of `keras_dlpa.PrototypeLayer`: it holds the label-ordered
    prototypes `W[A]` (row `j` is the prototype of label `j`) as one
    non-trainable weight created with a `Constant` initializer (a numpy table
    captured in the graph would become a spurious ONNX input), and no
    assignment variable, statistics or callback.

    Args:
        label_prototypes: array `(c, d)`, the prototypes gathered by the
            final assignment, `W[A]`; rows are L2-normalised here.
        top_k: optional `k >= 1`; also return the `k` best labels and
            cosines.
        **kwargs: base layer arguments (`name`, ...).

    Call arguments:
        inputs: features `(B, d)` (any float dtype).

    Returns:
        A dict: `"logits"` `(B, c)` float32 cosines in label order,
        `"label"` `(B,)` int32 top-1 label, `"score"` `(B,)` its cosine and,
        with `top_k`, `"top_k_labels"` `(B, k)` int32 and `"top_k_scores"`
        `(B, k)` float32 (best first). Top-1 uses `ops.top_k` because
        `argmax` does not survive tf2onnx.
    """

    def __init__(self, label_prototypes, top_k: int | None = None, **kwargs):
        super().__init__(**kwargs)
        table = np.asarray(label_prototypes, dtype="float64")
        if table.ndim != 2 or table.shape[0] < 2:
            raise ValueError(
                "Argument `label_prototypes` must have shape (c, d) with "
                f"c >= 2. Received: shape={table.shape}"
            )
        norms = np.linalg.norm(table, axis=1, keepdims=True)
        if not np.all(np.isfinite(table)) or np.any(norms == 0):
            raise ValueError(
                "Argument `label_prototypes` must hold finite, non-zero rows."
            )
        self.label_prototypes = (table / norms).astype("float32")
        self.num_classes, self.dim = self.label_prototypes.shape
        if top_k is not None and (
            not isinstance(top_k, int) or not 1 <= top_k <= self.num_classes
        ):
            raise ValueError(
                f"Argument `top_k` must be an int in [1, {self.num_classes}] "
                f"(the number of classes) or None. Received: top_k={top_k!r}"
            )
        self.top_k = top_k

    def build(self, input_shape):
        if input_shape[-1] != self.dim:
            raise ValueError(
                f"BakedPrototypeHead holds prototypes of dimension "
                f"d={self.dim}, but its input has feature size "
                f"{input_shape[-1]} (input shape {tuple(input_shape)})."
            )
        self.kernel = self.add_weight(
            shape=self.label_prototypes.shape,
            initializer=keras.initializers.Constant(self.label_prototypes),
            trainable=False,
            name="label_prototypes",
        )

    def call(self, inputs):
        features = ops.normalize(ops.cast(inputs, "float32"), axis=-1)
        logits = ops.matmul(features, ops.transpose(self.kernel))
        k = self.top_k or 1
        scores, labels = ops.top_k(logits, k)
        outputs = {
            "logits": logits,
            "label": labels[:, 0],
            "score": scores[:, 0],
        }
        if self.top_k:
            outputs["top_k_labels"] = labels
            outputs["top_k_scores"] = scores
        return outputs
