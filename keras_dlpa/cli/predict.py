"""`keras-dlpa predict`: batch top-k predictions on image files."""

import argparse


def register(subparsers) -> None:
    from keras_dlpa.export import onnx_client

    parser = subparsers.add_parser(
        "predict",
        help="Classify image files with a trained or exported model.",
        description="Top-k predictions (label, class name, cosine) for "
        "image files, folders (recursive) or list files, in batches, with "
        "a .keras file or run directory, a SavedModel folder, a .onnx "
        "file, or a TF-Serving / Triton model folder. .onnx models run on "
        "onnxruntime. A softmax run (no prototypes) gives softmax "
        "probabilities as scores. Images that cannot be read are listed "
        "on stderr (and in --out) and the others are still predicted. "
        "Exit codes: 2 usage (bad argument, missing model or image), 1 "
        "runtime (unreadable model, or some image could not be read).",
    )
    parser.add_argument(
        "model",
        help=".keras, run directory, SavedModel folder, .onnx, or a "
        "TF-Serving/Triton model folder",
    )
    onnx_client.add_arguments(parser)
    parser.set_defaults(func=_run)


def softmax_predictor(path):
    """A `Predictor` over a softmax run (`.keras` file or run directory).

    Scores are the softmax probabilities of the model's logits. Returns
    None when the model has a `PrototypeLayer` (then the cosine predictor
    of `load_predictor` applies).
    """
    import keras
    import numpy as np

    from keras_dlpa.export.onnx_client import PredictError
    from keras_dlpa.export.onnx_client import Predictor
    from keras_dlpa.export.serving_model import image_shape
    from keras_dlpa.export.source import load_classifier
    from keras_dlpa.reassign_callback import find_prototype_layer

    try:
        loaded = load_classifier(path)
    except ValueError as error:  # corrupt archive, unknown layers
        raise PredictError(str(error)) from error
    model = loaded.model
    try:
        find_prototype_layer(model)
        return None
    except ValueError:
        pass
    output = getattr(model, "outputs", None) or [None]
    if len(output) != 1 or len(getattr(output[0], "shape", ())) != 2:
        raise PredictError(
            f"{str(path)!r} has no PrototypeLayer and no single (B, c) "
            "logits output; predict needs a DL2PA or softmax classifier."
        )
    try:
        shape = image_shape(model)
    except ValueError as error:
        raise PredictError(str(error)) from error

    def logits(images):
        out = model.predict_on_batch(np.asarray(images, "float32"))
        probabilities = keras.ops.softmax(keras.ops.cast(out, "float32"))
        return keras.ops.convert_to_numpy(probabilities)

    return Predictor(logits, shape, loaded.class_names, "keras", str(path))


def _load(path):
    """`load_predictor`, or `softmax_predictor` for a softmax run."""
    from keras_dlpa.export.onnx_client import PredictError
    from keras_dlpa.export.predictors import load_predictor
    from keras_dlpa.export.predictors import resolve_model_path

    try:
        return load_predictor(path)
    except PredictError as error:  # a softmax run has no PrototypeLayer
        kind, resolved = resolve_model_path(path)
        if kind != "keras" or "PrototypeLayer" not in str(error):
            raise
        predictor = softmax_predictor(resolved)
        if predictor is None:
            raise
        return predictor


def _run(args: argparse.Namespace) -> int:
    from keras_dlpa.export import onnx_client

    return onnx_client.run(args, _load)
