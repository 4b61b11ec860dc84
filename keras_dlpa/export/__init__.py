"""Export of trained DL2PA classifiers for serving (imports TensorFlow):
SavedModel / ONNX / int8 ONNX, TF-Serving and Triton layouts, parity
checks (docs/serving.md). `load_predictor` and `load_classifier` live in
the TensorFlow-free `keras_dlpa.predict`."""

from keras_dlpa.export.classifier_export import FORMATS
from keras_dlpa.export.classifier_export import ExportOptions
from keras_dlpa.export.classifier_export import ExportResult
from keras_dlpa.export.classifier_export import export_classifier
from keras_dlpa.export.classifier_export import parse_formats
from keras_dlpa.export.onnx_model import export_onnx
from keras_dlpa.export.parity import ParityError
from keras_dlpa.export.parity import check_int8_parity
from keras_dlpa.export.parity import check_parity
from keras_dlpa.export.quantize import load_calibration_images
from keras_dlpa.export.quantize import quantize_onnx
from keras_dlpa.export.saved_model import export_saved_model
from keras_dlpa.export.serving_layout import LAYOUTS
from keras_dlpa.export.serving_layout import read_triton_config
from keras_dlpa.export.serving_layout import triton_config
from keras_dlpa.export.serving_model import BakedPrototypeHead
from keras_dlpa.export.serving_model import build_serving_model
from keras_dlpa.export.serving_model import export_metadata
from keras_dlpa.export.serving_model import extract_backbone
from keras_dlpa.export.serving_model import prototypes_sha256
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
