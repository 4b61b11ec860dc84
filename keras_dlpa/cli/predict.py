"""`keras-dlpa predict`: batch top-k predictions on image files."""

import argparse

from keras_dlpa_serving import onnx_client


def register(subparsers) -> None:
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


def _run(args: argparse.Namespace) -> int:
    from keras_dlpa.predict import load_predictor

    return onnx_client.run(args, load_predictor)
