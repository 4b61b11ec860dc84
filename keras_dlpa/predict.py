"""Loading a trained classifier, and `load_predictor` over every model kind.

Needs Keras but not TensorFlow, so `keras-dlpa predict` runs `.keras`
files and run directories on any backend. `.onnx` files (and Triton model
folders) run on onnxruntime through `keras_dlpa_serving.onnx_client`;
SavedModel folders (and TF-Serving model folders) need TensorFlow and run
`keras_dlpa.export.saved_model.saved_model_predictor`.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import keras
import numpy as np

from keras_dlpa.prototype_layer import find_prototype_layer
from keras_dlpa_serving import onnx_client
from keras_dlpa_serving.onnx_client import PredictError
from keras_dlpa_serving.onnx_client import Predictor

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"


@dataclasses.dataclass
class LoadedClassifier:
    """A classifier to export.

    Attributes:
        model: the Keras model (ends in a `keras_dlpa.PrototypeLayer`).
        class_names: `c` label names (label order), or None if unknown.
        source: where it came from (`"<in-memory>"` or a path).
    """

    model: keras.Model
    class_names: list | None
    source: str


def _read_class_names(config_path: Path):
    if not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Cannot read {config_path} as JSON: {error}. A run directory's "
            "config.json must be a JSON dict."
        ) from error
    names = config.get("class_names") if isinstance(config, dict) else None
    if names is not None and (
        not isinstance(names, list)
        or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError(
            f'"class_names" in {config_path} must be a list of strings. '
            f"Received: {names!r}"
        )
    return names


def _load_keras_file(path: Path) -> keras.Model:
    if path.suffix != ".keras":
        raise ValueError(
            f"Expected a `.keras` archive, a Keras model or a run directory. "
            f"Received: {str(path)!r}"
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a valid .keras archive (corrupt or truncated: "
            f"{path.stat().st_size} bytes, not a readable zip file). "
            "Re-save the model with model.save(...)."
        )
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:
        raise ValueError(
            f"Cannot load {path} as a Keras model (corrupt or truncated "
            f"archive, or unknown custom layers): "
            f"{type(error).__name__}: {error}"
        ) from error


def load_classifier(source, class_names=None) -> LoadedClassifier:
    """Resolves `source` to a model and its class names.

    Args:
        source: a `keras.Model`; a `.keras` file (class names from a
            `config.json` beside it, if any); or a RUN_DIR (uses
            `RUN_DIR/model.keras` and `RUN_DIR/config.json` "class_names").
        class_names: optional list of `c` names; overrides the config.

    Returns:
        A `LoadedClassifier`.
    """
    if isinstance(source, keras.Model):
        model, names, where = source, None, "<in-memory>"
    elif isinstance(source, (str, Path)):
        path = Path(source)
        model_path = path / MODEL_FILE if path.is_dir() else path
        if path.is_dir() and not model_path.is_file():
            raise FileNotFoundError(
                f"Run directory {path} has no {MODEL_FILE}. Pass a run "
                "directory of a finished run or a .keras file."
            )
        if not path.exists():
            raise FileNotFoundError(
                f"No such model file or run directory: {str(path)!r}"
            )
        model = _load_keras_file(model_path)
        names = _read_class_names(model_path.parent / CONFIG_FILE)
        where = str(path)
    else:
        raise TypeError(
            "Argument `source` must be a keras.Model, a .keras path or a run "
            f"directory. Received: {type(source).__name__}"
        )
    if class_names is not None:
        names = [str(n) for n in class_names]
    return LoadedClassifier(model=model, class_names=names, source=where)


def image_shape(model) -> tuple:
    """Returns the model's image input shape `(H, W, C)` (H/W may be None)."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            f"Model '{model.name}' has no symbolic inputs (a subclassed or "
            "unbuilt model). Export needs a Functional or Sequential model "
            "built on a keras.Input."
        )
    if len(inputs) != 1:
        raise ValueError(
            f"Model '{model.name}' has {len(inputs)} inputs; export expects "
            "one image input (B, H, W, C)."
        )
    shape = tuple(inputs[0].shape[1:])
    if len(shape) != 3:
        raise ValueError(
            f"Model '{model.name}' input has shape {(None, *shape)}; export "
            "expects images (B, H, W, C)."
        )
    return shape


def keras_predictor(path) -> Predictor:
    """A `Predictor` over a `.keras` file or run directory.

    Runs the model with `predict_on_batch` (one graph call per batch,
    without the per-call setup of `model.predict`): a DL2PA classifier
    gives its cosine logits in label order (what its exports give); a
    softmax classifier (no `PrototypeLayer`, one `(B, c)` logits output)
    scores with its softmax probabilities.
    """
    try:
        loaded = load_classifier(path)
        shape = image_shape(loaded.model)
    except ValueError as error:
        raise PredictError(str(error)) from error
    model = loaded.model
    try:
        find_prototype_layer(model)
        softmax = False
    except ValueError as error:
        if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
            raise PredictError(
                f"{str(path)!r} has no PrototypeLayer and no single (B, c) "
                "logits output; predict needs a DL2PA or softmax "
                f"classifier ({error})"
            ) from error
        softmax = True

    def logits(images):
        out = model.predict_on_batch(np.asarray(images, "float32"))
        out = keras.ops.cast(out, "float32")
        if softmax:
            out = keras.ops.softmax(out)
        return keras.ops.convert_to_numpy(out)

    return Predictor(logits, shape, loaded.class_names, "keras", str(path))


def load_predictor(path) -> Predictor:
    """Loads any exported or trained model as a `Predictor`."""
    kind, resolved = onnx_client.resolve_model_path(path)
    if kind == "onnx":
        return onnx_client.onnx_predictor(resolved)
    if kind == "keras":
        return keras_predictor(resolved)
    # A SavedModel needs TensorFlow, which only this kind imports.
    from keras_dlpa.export.saved_model import saved_model_predictor

    return saved_model_predictor(resolved)
