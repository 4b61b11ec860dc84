"""SavedModel export with named serving signatures."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import tensorflow as tf

METADATA_FILE = "keras_dlpa.json"


def _endpoint(serving_model, shape, dtype):
    def serve(images):
        images = tf.ensure_shape(images, (None, *shape))
        return serving_model(tf.cast(images, tf.float32), training=False)

    spec = tf.TensorSpec((None, *shape), dtype, name="images")
    return serve, [spec]


def export_saved_model(serving_model, path, metadata=None) -> Path:
    """Writes `serving_model` as a TensorFlow SavedModel.

    Signatures (input `"images"`, dynamic batch, outputs as in
    `build_serving_model`):
    - `serving_default`: float32 raw images `(B, H, W, C)` (0-255 pixels,
      the model normalises them itself);
    - `serving_uint8`: uint8 images `(B, H, W, C)`, cast inside.
    An input whose H/W/C differ from the model's fails with an
    `InvalidArgumentError` naming the received and expected shapes.

    Args:
        serving_model: the model from `build_serving_model`.
        path: output directory.
        metadata: optional `{str: str}` written to
            `path/assets.extra/keras_dlpa.json`.

    Returns:
        The SavedModel directory.
    """
    path = Path(path)
    shape = tuple(serving_model.inputs[0].shape[1:])
    archive = keras.export.ExportArchive()
    archive.track(serving_model)
    for name, dtype in (
        ("serving_default", tf.float32),
        ("serving_uint8", tf.uint8),
    ):
        fn, signature = _endpoint(serving_model, shape, dtype)
        archive.add_endpoint(name, fn, input_signature=signature)
    archive.write_out(str(path), verbose=False)
    if metadata is not None:
        extra = path / "assets.extra"
        extra.mkdir(parents=True, exist_ok=True)
        (extra / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    return path
