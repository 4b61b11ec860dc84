"""Serving graph: backbone -> baked cosine head -> logits, label, score;
and the metadata written into the exports (ONNX `metadata_props`, JSON)."""

from __future__ import annotations

import hashlib
import json

import keras
import numpy as np
from keras import ops

from keras_dlpa import __version__
from keras_dlpa.predict import image_shape
from keras_dlpa.prototype_layer import find_prototype_layer


class BakedPrototypeHead(keras.layers.Layer):
    """Label-ordered cosine classifier with the assignment baked in.

    Serving twin of `keras_dlpa.PrototypeLayer`: one non-trainable weight
    holds the label-ordered prototypes `W[A]` (a `Constant` initializer: a
    numpy table captured in the graph would become an ONNX input); no
    assignment variable, statistics or callback.

    Args:
        label_prototypes: array `(c, d)`, `W[A]` (row `j`: the prototype of
            label `j`); rows are L2-normalised here.
        top_k: optional `k >= 1`; also return the `k` best labels and
            cosines.
        **kwargs: base layer arguments (`name`, ...).

    Call arguments:
        inputs: features `(B, d)` (any float dtype).

    Returns:
        A dict: `"logits"` `(B, c)` float32 cosines in label order,
        `"label"` `(B,)` int32 top-1 label, `"score"` `(B,)` its cosine and,
        with `top_k`, `"top_k_labels"` `(B, k)` int32 and `"top_k_scores"`
        `(B, k)` float32, best first (`ops.top_k`: `argmax` does not
        survive tf2onnx).
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


def prototype_layer_of(model):
    """The model's one `PrototypeLayer`, or a clear error."""
    try:
        return find_prototype_layer(model)
    except ValueError as error:
        raise ValueError(
            f"Cannot export model '{getattr(model, 'name', model)}' as a "
            f"DL2PA classifier: {error}"
        ) from error


def extract_backbone(model) -> keras.Model:
    """The sub-graph of `model` (one image input, one `PrototypeLayer`)
    from its input to the prototype layer: a `keras.Model` mapping images
    `(B, H, W, C)` to features `(B, d)`, sharing the model's weights."""
    layer = prototype_layer_of(model)
    image_shape(model)
    try:
        return keras.Model(
            model.inputs[0], layer.input, name=f"{model.name}_backbone"
        )
    except Exception as error:
        raise ValueError(
            f"Cannot cut model '{model.name}' at its PrototypeLayer "
            f"'{layer.name}': its input is not reachable from the model "
            "input (a PrototypeLayer inside a nested or subclassed model?). "
            "Build the classifier as keras.Model(images, "
            "PrototypeLayer(...)(backbone(images)))."
        ) from error


def build_serving_model(model, top_k: int | None = None) -> keras.Model:
    """Builds the inference graph of a trained DL2PA classifier.

    images `(B, H, W, C)` float32 -> the model up to its `PrototypeLayer`
    (normalisation included) -> `BakedPrototypeHead` (cosines against the
    label-ordered prototypes `W[A]`, baked in as constants).

    Args:
        model: trained classifier (Functional/Sequential) ending in a
            `keras_dlpa.PrototypeLayer`.
        top_k: optional `k`; adds `"top_k_labels"`/`"top_k_scores"` `(B, k)`.

    Returns:
        A `keras.Model` with one input `"images"` and dict outputs
        `"logits"` `(B, c)`, `"label"` `(B,)` int32, `"score"` `(B,)` (and
        the top-k pair).
    """
    backbone = extract_backbone(model)
    layer = prototype_layer_of(model)
    prototypes = keras.ops.convert_to_numpy(layer.prototypes)
    assignment = keras.ops.convert_to_numpy(layer.assignment)
    head = BakedPrototypeHead(
        prototypes[assignment], top_k=top_k, name="baked_prototype_head"
    )
    return keras.Model(
        backbone.inputs[0],
        head(backbone.outputs[0]),
        name=f"{model.name}_serving",
    )


def prototypes_sha256(prototypes) -> str:
    """sha256 of the prototypes `(c, d)` as C-ordered little-endian float32."""
    array = np.ascontiguousarray(np.asarray(prototypes, dtype="<f4"))
    return hashlib.sha256(array.tobytes()).hexdigest()


def export_metadata(model, class_names=None, top_k=None) -> dict:
    """Returns the export metadata of a classifier as `{str: str}`.

    Keys: `class_names` (JSON list), `num_classes` (c), `dim` (d),
    `prototypes_sha256` (see `prototypes_sha256`, prototype order),
    `assignment` (JSON list, label j -> prototype index), `input_shape`
    (JSON `[H, W, C]`), `input_dtype`, `outputs` (JSON list), `top_k`,
    `keras_dlpa_version`. Values are strings so they fit ONNX
    `metadata_props`.
    """
    layer = prototype_layer_of(model)
    prototypes = keras.ops.convert_to_numpy(layer.prototypes)
    assignment = keras.ops.convert_to_numpy(layer.assignment).tolist()
    c, d = prototypes.shape
    if class_names is None:
        class_names = [str(j) for j in range(c)]
    class_names = [str(n) for n in class_names]
    if len(class_names) != c:
        raise ValueError(
            f"Got {len(class_names)} class names for a model with c={c} "
            f"classes. Received: class_names={class_names!r}"
        )
    outputs = ["logits", "label", "score"]
    if top_k:
        outputs += ["top_k_labels", "top_k_scores"]
    return {
        "class_names": json.dumps(class_names),
        "num_classes": str(c),
        "dim": str(d),
        "prototypes_sha256": prototypes_sha256(prototypes),
        "assignment": json.dumps(assignment),
        "input_shape": json.dumps(list(image_shape(model))),
        "input_dtype": "float32",
        "outputs": json.dumps(outputs),
        "top_k": str(top_k or 0),
        "keras_dlpa_version": __version__,
    }
