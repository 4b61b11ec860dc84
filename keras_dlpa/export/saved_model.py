"""SavedModel export with named serving signatures, and its predictor."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_dlpa_serving.onnx_client import PredictError
from keras_dlpa_serving.onnx_client import Predictor

METADATA_FILE = "keras_dlpa.json"


def export_saved_model(serving_model, path, metadata=None) -> Path:
    """Writes `serving_model` as a TensorFlow SavedModel.

    Signatures (input `"images"` `(B, H, W, C)`, dynamic batch, outputs of
    `build_serving_model`): `serving_default` takes float32 raw 0-255
    pixels, `serving_uint8` uint8 images. An input of another H/W/C fails
    with an `InvalidArgumentError` naming both shapes.

    Args:
        serving_model: the model from `build_serving_model`.
        path: output directory.
        metadata: optional `{str: str}`, written to
            `path/assets.extra/keras_dlpa.json`.

    Returns:
        The SavedModel directory.
    """
    path = Path(path)
    shape = (None, *serving_model.inputs[0].shape[1:])

    def serve(images):
        images = tf.ensure_shape(images, shape)
        return serving_model(tf.cast(images, tf.float32), training=False)

    archive = keras.export.ExportArchive()
    archive.track(serving_model)
    for name, dtype in (
        ("serving_default", tf.float32),
        ("serving_uint8", tf.uint8),
    ):
        spec = tf.TensorSpec(shape, dtype, name="images")
        archive.add_endpoint(name, serve, input_signature=[spec])
    archive.write_out(str(path), verbose=False)
    if metadata is not None:
        extra = path / "assets.extra"
        extra.mkdir(parents=True, exist_ok=True)
        (extra / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    return path


def saved_model_predictor(path) -> Predictor:
    """A `Predictor` over an exported SavedModel (`serving_uint8`)."""
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
