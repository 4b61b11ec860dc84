"""Classify image files with an exported DL2PA ONNX model.

A light serving client: needs only numpy, onnxruntime and pillow (no
TensorFlow, no Keras). It is a thin wrapper over
`keras_dlpa_serving.onnx_client` (install the package, e.g. `pip install
-e .` in a checkout): that package imports neither `keras_dlpa` nor Keras,
and `keras-dlpa predict` uses the same code. MODEL: a `.onnx` file or a
Triton model folder (highest version). Reads class names from the model's
ONNX metadata, takes image files, folders (searched recursively for
.jpg/.jpeg/.png/.webp/.bmp/.gif/.tif) or .txt/.lst list files, converts
them to the model's channels, resizes them to the model's input size
(unless --no-resize) and prints one line per image

    path  label  class_name  score  [label  class_name  score ...]

or writes `--out predictions.csv` (`path,label_1,class_name_1,score_1,...`).

Usage:
    python export/onnx_predict.py MODEL.onnx IMAGES... [--top-k K]
        [--out predictions.csv] [--json] [--batch-size 64] [--no-resize]
"""

import sys

from keras_dlpa_serving.onnx_client import classify
from keras_dlpa_serving.onnx_client import find_images
from keras_dlpa_serving.onnx_client import load_image
from keras_dlpa_serving.onnx_client import load_model
from keras_dlpa_serving.onnx_client import main

__all__ = ["classify", "find_images", "load_image", "load_model", "main"]

if __name__ == "__main__":
    sys.exit(main())
