"""Classify image files with an exported DL2PA ONNX model.

A light serving client: needs only numpy, onnxruntime and pillow (no
TensorFlow, no Keras). It is a thin wrapper over
`keras_dlpa/export/onnx_client.py`, loaded by file path so that neither
`keras_dlpa` nor its Keras imports run; `keras-dlpa predict` uses the same
code. MODEL: a `.onnx` file or a Triton model folder (highest version).
Reads class names from the model's ONNX metadata, takes image files,
folders (searched recursively for .jpg/.jpeg/.png/.webp/.bmp/.gif/.tif)
or .txt/.lst list files, converts them to the model's channels, resizes
them to the model's input size (unless --no-resize) and prints one line
per image

    path  label  class_name  score  [label  class_name  score ...]

or writes `--out predictions.csv` (`path,label_1,class_name_1,score_1,...`).

Usage:
    python export/onnx_predict.py MODEL.onnx IMAGES... [--top-k K]
        [--out predictions.csv] [--json] [--batch-size 64] [--no-resize]
"""

import importlib.util
import sys
from pathlib import Path

_CLIENT = (
    Path(__file__).resolve().parents[1]
    / "keras_dlpa"
    / "export"
    / "onnx_client.py"
)
_spec = importlib.util.spec_from_file_location("_onnx_client", _CLIENT)
client = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = client  # dataclasses look their module up
_spec.loader.exec_module(client)

classify = client.classify
find_images = client.find_images
load_image = client.load_image
load_model = client.load_model
main = client.main

if __name__ == "__main__":
    sys.exit(main())
