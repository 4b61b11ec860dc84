"""Model metadata written into exports (ONNX `metadata_props`, JSON)."""

from __future__ import annotations

import hashlib
import json

import keras
import numpy as np

from keras_dlpa import __version__
from keras_dlpa.export.serving_model import prototype_layer_of
from keras_dlpa.predict import image_shape


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
