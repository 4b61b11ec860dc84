"""Export of trained DL2PA classifiers for serving (needs TensorFlow).

The serving graph is backbone -> L2 normalise -> cosines against the
label-ordered prototypes `W[A]` baked in as constants, with outputs
`logits`, `label`, `score` (and optional top-k); written as a SavedModel
and/or ONNX (optionally in TF-Serving / Triton repository layouts, and as
an int8 ONNX copy) and checked for parity with the Keras model. Importing
this package imports TensorFlow (the SavedModel and ONNX writers).

Serving needs neither `keras_dlpa` nor the training statistics: the
Keras-free client `keras_dlpa_serving` classifies image files with an
exported `.onnx` model, and `load_predictor` does the same with any model
kind (`.keras`, SavedModel, `.onnx`). `load_predictor` and
`load_classifier` live in `keras_dlpa.predict`, which imports no
TensorFlow (`keras-dlpa predict` on a `.keras` model runs on any backend).
"""

from keras_dlpa.export.classifier_export import FORMATS
from keras_dlpa.export.classifier_export import ExportOptions
from keras_dlpa.export.classifier_export import ExportResult
from keras_dlpa.export.classifier_export import export_classifier
from keras_dlpa.export.classifier_export import parse_formats
from keras_dlpa.export.metadata import export_metadata
from keras_dlpa.export.metadata import prototypes_sha256
from keras_dlpa.export.onnx_model import export_onnx
from keras_dlpa.export.parity import ParityError
from keras_dlpa.export.parity import check_int8_parity
from keras_dlpa.export.parity import check_parity
from keras_dlpa.export.prototype_head import BakedPrototypeHead
from keras_dlpa.export.quantize import load_calibration_images
from keras_dlpa.export.quantize import quantize_onnx
from keras_dlpa.export.saved_model import export_saved_model
from keras_dlpa.export.serving_layout import LAYOUTS
from keras_dlpa.export.serving_layout import read_triton_config
from keras_dlpa.export.serving_layout import triton_config
from keras_dlpa.export.serving_model import build_serving_model
from keras_dlpa.export.serving_model import extract_backbone
from keras_dlpa.predict import LoadedClassifier
from keras_dlpa.predict import load_classifier
from keras_dlpa.predict import load_predictor

__all__ = [
    "BakedPrototypeHead",
    "ExportOptions",
    "ExportResult",
    "FORMATS",
    "LAYOUTS",
    "LoadedClassifier",
    "ParityError",
    "build_serving_model",
    "check_int8_parity",
    "check_parity",
    "export_classifier",
    "export_metadata",
    "export_onnx",
    "export_saved_model",
    "extract_backbone",
    "load_calibration_images",
    "load_classifier",
    "load_predictor",
    "parse_formats",
    "prototypes_sha256",
    "quantize_onnx",
    "read_triton_config",
    "triton_config",
]
