"""Loading a trained classifier from a model, a `.keras` file or a RUN_DIR."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import keras

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


def load_keras_file(path) -> keras.Model:
    """Loads a `.keras` archive, with a clear error when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}.")
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
        if path.is_dir():
            model_path = path / MODEL_FILE
            if not model_path.is_file():
                raise FileNotFoundError(
                    f"Run directory {path} has no {MODEL_FILE}. Pass a run "
                    "directory of a finished run or a .keras file."
                )
        elif path.exists():
            model_path = path
        else:
            raise FileNotFoundError(
                f"No such model file or run directory: {str(path)!r}"
            )
        model = load_keras_file(model_path)
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
