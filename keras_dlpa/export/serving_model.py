"""Serving graph: backbone -> baked cosine head -> logits, label, score."""

from __future__ import annotations

import keras

from keras_dlpa.export.prototype_head import BakedPrototypeHead
from keras_dlpa.predict import image_shape
from keras_dlpa.prototype_layer import find_prototype_layer


def prototype_layer_of(model):
    """Returns the model's one `PrototypeLayer`, or raises a clear error."""
    try:
        return find_prototype_layer(model)
    except ValueError as error:
        raise ValueError(
            f"Cannot export model '{getattr(model, 'name', model)}' as a "
            f"DL2PA classifier: {error}"
        ) from error


def extract_backbone(model) -> keras.Model:
    """Returns the sub-graph from the model input to the prototype layer.

    Args:
        model: a Functional/Sequential Keras model with one image input and
            one `keras_dlpa.PrototypeLayer`.

    Returns:
        A `keras.Model` mapping images `(B, H, W, C)` to features `(B, d)`
        (sharing the model's weights; the normalisation layer stays first).
    """
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

    images `(B, H, W, C)` float32 -> backbone (the model up to its
    `PrototypeLayer`, training normalisation included) -> L2 normalise ->
    cosines against the label-ordered prototypes `W[A]`, baked in as
    constants (no assignment variable, statistics or `keras_dlpa` needed at
    serving time).

    Args:
        model: trained classifier (Functional/Sequential) ending in a
            `keras_dlpa.PrototypeLayer`.
        top_k: optional `k`; adds `"top_k_labels"`/`"top_k_scores"` `(B, k)`.

    Returns:
        A `keras.Model` with one input `"images"` and dict outputs
        `"logits"` `(B, c)`, `"label"` `(B,)` int32, `"score"` `(B,)` (and
        the top-k pair), see `BakedPrototypeHead`.
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
