"""Keras-free serving client for exported DL2PA classifiers.

Classifies image files with an exported `.onnx` model (or a Triton model
folder) using numpy, pillow and onnxruntime only. It is a top-level package
beside `keras_dlpa` so that importing it never runs `keras_dlpa/__init__.py`
(which imports Keras): `keras-dlpa predict model.onnx` and
`export/onnx_predict.py` run on a machine without Keras, TensorFlow or JAX.

- `onnx_client`: model paths (`resolve_model_path`), the `Predictor`
  interface, the ONNX runner (`load_onnx`), image discovery and decoding,
  the batch loop (`predict_files`) and the command line (`run`, `main`).
- `image_decode`: image decoding shared with `keras_dlpa.data` (any PIL
  mode to uint8, 16-bit samples scaled rather than clipped).
"""

from keras_dlpa_serving.onnx_client import IMAGE_SUFFIXES
from keras_dlpa_serving.onnx_client import PredictError
from keras_dlpa_serving.onnx_client import Predictor
from keras_dlpa_serving.onnx_client import classify
from keras_dlpa_serving.onnx_client import find_images
from keras_dlpa_serving.onnx_client import load_image
from keras_dlpa_serving.onnx_client import load_model
from keras_dlpa_serving.onnx_client import load_onnx
from keras_dlpa_serving.onnx_client import predict_files
from keras_dlpa_serving.onnx_client import resolve_model_path
from keras_dlpa_serving.onnx_client import write_csv

__all__ = [
    "IMAGE_SUFFIXES",
    "PredictError",
    "Predictor",
    "classify",
    "find_images",
    "load_image",
    "load_model",
    "load_onnx",
    "predict_files",
    "resolve_model_path",
    "write_csv",
]
