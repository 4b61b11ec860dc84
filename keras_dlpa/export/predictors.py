"""`load_predictor`: one batch-prediction interface over every model kind.

`.onnx` files (and Triton model folders) run on onnxruntime through
`keras_dlpa_serving.onnx_client` without TensorFlow; `.keras` files and run
directories run the Keras model, SavedModel folders (and TF-Serving model
folders) their `serving_default` signature.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_dlpa_serving import onnx_client
from keras_dlpa_serving.onnx_client import PredictError
from keras_dlpa_serving.onnx_client import Predictor
from keras_dlpa_serving.onnx_client import resolve_model_path

__all__ = [
    "keras_predictor",
    "load_predictor",
    "resolve_model_path",
    "saved_model_predictor",
]


def keras_predictor(path) -> Predictor:
    """A `Predictor` over a `.keras` file or run directory.

    Runs the serving graph of the model (`build_serving_model`: the same
    cosines as its exports) with `predict_on_batch` (one graph call per
    batch, without the per-call setup of `model.predict`). A softmax
    classifier (no `PrototypeLayer`, one `(B, c)` logits output) scores
    with its softmax probabilities.
    """
    import keras

    from keras_dlpa.export.serving_model import build_serving_model
    from keras_dlpa.export.serving_model import image_shape
    from keras_dlpa.export.source import load_classifier

    try:
        loaded = load_classifier(path)
    except ValueError as error:  # corrupt archive, unknown layers
        raise PredictError(str(error)) from error
    model = loaded.model
    try:
        serving = build_serving_model(model)
    except ValueError as error:  # no PrototypeLayer: a softmax classifier?
        output = getattr(model, "outputs", None) or [None]
        if len(output) != 1 or len(getattr(output[0], "shape", ())) != 2:
            raise PredictError(
                f"{str(path)!r} has no PrototypeLayer and no single (B, c) "
                "logits output; predict needs a DL2PA or softmax "
                f"classifier ({error})"
            ) from error
        serving = None
    try:
        shape = image_shape(model)
    except ValueError as error:
        raise PredictError(str(error)) from error

    def logits(images):
        images = np.asarray(images, "float32")
        if serving is not None:
            out = serving.predict_on_batch(images)
            return np.asarray(out["logits"], "float32")
        # A softmax run: the scores are its softmax probabilities.
        out = keras.ops.cast(model.predict_on_batch(images), "float32")
        return keras.ops.convert_to_numpy(keras.ops.softmax(out))

    return Predictor(logits, shape, loaded.class_names, "keras", str(path))


def saved_model_predictor(path) -> Predictor:
    """A `Predictor` over an exported SavedModel (`serving_uint8`)."""
    import tensorflow as tf

    from keras_dlpa.export.saved_model import METADATA_FILE

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:
        raise PredictError(
            f"Cannot load {str(path)!r} as a SavedModel: {error}"
        ) from error
    signatures = loaded.signatures
    name = "serving_uint8" if "serving_uint8" in signatures else None
    fn = signatures[name or "serving_default"]
    spec = fn.structured_input_signature[1]["images"]
    if "logits" not in fn.structured_outputs:
        raise PredictError(
            f"SavedModel {str(path)!r} has no 'logits' output; export it "
            "with keras-dlpa export."
        )
    names = None
    meta = Path(path) / "assets.extra" / METADATA_FILE
    if meta.is_file():
        names = json.loads(json.loads(meta.read_text())["class_names"])

    def logits(images):
        x = tf.constant(np.asarray(images).astype(spec.dtype.as_numpy_dtype))
        return fn(images=x)["logits"].numpy()

    shape = tuple(spec.shape.as_list()[1:])
    return Predictor(logits, shape, names, "savedmodel", str(path))


def load_predictor(path) -> Predictor:
    """Loads any exported or trained model as a `Predictor`."""
    kind, resolved = resolve_model_path(path)
    if kind == "onnx":
        return onnx_client.onnx_predictor(resolved)
    if kind == "keras":
        return keras_predictor(resolved)
    return saved_model_predictor(resolved)
